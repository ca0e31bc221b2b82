// The rich-text editor (TinyMCE, served by this site from node_modules) on every
// <textarea data-rich-text>: "full" for item bodies (headings, images), "basic" for an
// issue's introduction and closing (a mail: emphasis, links, lists). Without JavaScript,
// or when the editor is not installed, the textarea stays as it is and takes HTML.
// Whatever the editor sends is cleaned on the server by the same allowlist as every item
// body (shared/sanitize.py).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const areas = document.querySelectorAll("textarea[data-rich-text]");
  const settings = document.getElementById("rich-text-config");
  if (!areas.length || !settings || !window.tinymce) return;
  const config = settings.dataset;

  // Images go to the site's own upload endpoint, with the form's CSRF token.
  const uploadImage = (blobInfo) => new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("csrf_token", config.csrfToken);
    form.append("file", blobInfo.blob(), blobInfo.filename());
    fetch(config.uploadUrl, { method: "POST", body: form, credentials: "same-origin",
                              headers: { Accept: "application/json" } })
      .then((response) => response.json().then((answer) => {
        if (response.ok) resolve(answer.location);
        else reject({ message: answer.error || response.statusText, remove: true });
      }))
      .catch((error) => reject({ message: String(error), remove: true }));
  });

  const common = {
    license_key: "gpl",
    base_url: config.baseUrl.replace(/\/$/, ""),
    suffix: ".min",
    language: config.language === "de" ? "de" : undefined,
    language_url: config.language === "de" ? config.languageUrl : undefined,
    promotion: false,
    branding: false,
    menubar: false,
    // Links keep the addresses as given (our media paths stay site paths).
    convert_urls: false,
    relative_urls: false,
    link_default_protocol: "https",
    link_assume_external_targets: "https",
    // Pasted Word or LibreOffice text keeps its structure, not its styling.
    paste_data_images: false,
    paste_remove_styles_if_webkit: true,
    valid_styles: {},
    invalid_styles: "*",
    // The editor's own document: no styles from outside, readable like the site.
    content_style: "body { font: 1rem/1.5 system-ui, sans-serif; margin: 1rem; } img { max-width: 100%; height: auto; }",
  };
  const modes = {
    full: {
      height: 420,
      plugins: "lists link image autolink",
      toolbar: "blocks | bold italic | link image | bullist numlist blockquote | undo redo",
      // The headings an item body may use (its title is the page's h1).
      block_formats: "Paragraph=p; Heading 2=h2; Heading 3=h3; Heading 4=h4",
      // Images: chosen from what was uploaded, or uploaded here; always described.
      image_list: config.imageListUrl,
      image_description: true,
      a11y_advanced_options: true,
      image_dimensions: false,
      automatic_uploads: true,
      images_upload_handler: uploadImage,
      images_file_types: "png,jpg,jpeg,gif,webp",
    },
    basic: {
      height: 220,
      plugins: "lists link autolink",
      toolbar: "bold italic | link | bullist numlist | undo redo",
    },
  };

  areas.forEach((area) => {
    const label = document.querySelector(`label[for="${area.id}"]`);
    // The editing area's name for screen readers: on its body, and as the frame's title,
    // which TinyMCE sets in Firefox only (axe-core asks every frame for a name).
    const name = `${label ? label.textContent.trim() : ""} – ${config.areaName}`;
    window.tinymce.init({
      ...common,
      ...(modes[area.dataset.richText] || modes.full),
      target: area,
      iframe_aria_text: name,
      iframe_attrs: { title: name },
    });
  });
});
