"""Pages, feeds and sign-ups per second, each against Starlette's own limit in one run.

One uvicorn process serves the whole site (SQLite, the demo content, a private Redis);
another serves a trivial Starlette app answering 4 KB. wrk loads each in turn with the
same settings (two threads, 20 connections), and every row prints its rate as a ratio of
the trivial one, with p99 latency and its target:

- a cached feed (200) and a conditional GET answered 304: at least 0.70;
- the news page, an item page, the issue archive and the sign-up page, as anonymous
  readers load them (taking gzip, as every browser and feed reader does): at least 0.50;
- the sign-up form POSTed with a fresh address each time, through to the confirmation
  mail queued in Redis: at least 0.33 of a trivial POST, p99 under 100 ms.

    .venv/bin/python bench/web.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    SITE_APP,
    TRIVIAL_APP,
    Verdicts,
    bench_environment,
    free_port,
    http_load,
    serve,
    wrk_available,
)

#: A POST of the sign-up form with an address no one used before; every wrk thread
#: numbers its own, so no two requests share one.
SIGNUP_SCRIPT = """
local threads = 0
setup = function(thread)
  -- Runs in the main Lua state; each thread's own state gets its number as a global.
  threads = threads + 1
  thread:set("thread_number", threads)
end
local counter = 0
request = function()
  counter = counter + 1
  local body = "email=bench-" .. thread_number .. "-" .. counter
    .. "%40example.org&name=Bench&language=de"
  -- What a browser sends with the form of the site's own page.
  return wrk.format("POST", "{path}", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Sec-Fetch-Site"] = "same-origin",
    ["Origin"] = "{origin}",
    ["Referer"] = "{referer}",
  }, body)
end
"""

#: The same request shape against the trivial app.
TRIVIAL_POST_SCRIPT = """
request = function()
  return wrk.format("POST", "/", {["Content-Type"] = "application/x-www-form-urlencoded"},
    "email=bench%40example.org&name=Bench&language=de")
end
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    verdicts = Verdicts()
    with bench_environment("web", KGI_SIGNUPS_PER_IP_PER_HOUR="100000000") as (workdir, env):
        trivial_port, site_port = free_port(), free_port()
        processes = [
            serve(workdir, "trivial_app", TRIVIAL_APP, trivial_port, env),
            serve(workdir, "site_app", SITE_APP, site_port, env),
        ]
        try:
            site, trivial = f"http://127.0.0.1:{site_port}", f"http://127.0.0.1:{trivial_port}"
            news = httpx.get(f"{site}/news/")
            item = re.search(r'href="(/news/(?!feed\.|admin|events|media|api)[^"/?]+)"', news.text)
            assert item, "no item link on the news page"
            etag = httpx.get(f"{site}/news/feed.atom").headers["etag"]
            # As browsers and feed readers ask: they all take gzip.
            gz = {"Accept-Encoding": "gzip"}
            pages = {
                "cached Atom feed (200)": (f"{site}/news/feed.atom", gz, 0.70),
                "conditional GET (304)": (
                    f"{site}/news/feed.atom",
                    {**gz, "If-None-Match": etag},
                    0.70,
                ),
                "news page": (f"{site}/news/", gz, 0.50),
                "item page": (site + item.group(1), gz, 0.50),
                "issue archive": (f"{site}/newsletter/archive/", gz, 0.50),
                "sign-up page": (f"{site}/subscribers/signup", gz, 0.50),
            }
            for url, headers, _ in pages.values():
                assert httpx.get(url, headers=headers).status_code in (200, 304), url
                http_load(url, 2, headers=headers)  # warm-up
            limit = http_load(trivial, args.seconds)
            print(f"load generator: {limit.tool}; {args.seconds:g} s per row")
            verdicts.limit("trivial Starlette GET, 4 KB (the limit)", limit)
            for label, (url, headers, at_least) in pages.items():
                verdicts.ratio(
                    label, http_load(url, args.seconds, headers=headers), limit, at_least
                )
            if wrk_available():
                signup_post(site, trivial, args.seconds, env, verdicts)
            else:
                print("sign-up POST: needs wrk (sh scripts/install-bench-tools.sh); not measured")
                verdicts.passed = False
        finally:
            for process in processes:
                process.terminate()
                process.wait()
    return verdicts.finish()


def signup_post(
    site: str, trivial: str, seconds: float, env: dict[str, str], verdicts: Verdicts
) -> None:
    """Sign-ups through to the queued confirmation, against a trivial POST."""
    import redis

    script = (
        SIGNUP_SCRIPT.replace("{origin}", site)
        .replace("{path}", "/subscribers/signup")
        .replace("{referer}", f"{site}/subscribers/signup")
    )
    queue = redis.Redis.from_url(env["KGI_REDIS_URL"])
    limit = http_load(trivial, seconds, script=TRIVIAL_POST_SCRIPT)
    before = queue.llen("kgi-dramatiq:subscribers")
    signups = http_load(f"{site}/subscribers/signup", seconds, script=script)
    queued = queue.llen("kgi-dramatiq:subscribers") - before
    verdicts.limit("trivial Starlette POST (the limit)", limit)
    verdicts.ratio("sign-up POST to the queued confirmation", signups, limit, 0.33)
    verdicts.row("sign-up p99", f"{signups.p99_ms:.1f} ms", signups.p99_ms < 100, "< 100 ms")
    answered = signups.requests - signups.failed
    verdicts.row(
        "confirmations queued per answered sign-up",
        f"{queued} for {answered}",
        queued >= answered,
        "all",
    )


if __name__ == "__main__":
    raise SystemExit(main())
