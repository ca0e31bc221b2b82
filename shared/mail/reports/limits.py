"""How much of one hostile message the report readers take in, at most.

Whoever can send us mail controls every byte of it: each bound here caps the work (or
the output) one message can cause. The public ones are part of the package's API.
"""

#: Most recipients one report names; a DSN listing thousands is cut here (our mail has
#: one recipient per message, so a longer list is either a relay's digest or an attack).
MAX_RECIPIENTS = 100

#: Longest diagnostic kept, in characters, after it is made one line.
MAX_DIAGNOSTIC_CHARS = 500

#: Bytes of a message read at most. ``kgi inbound`` takes up to 10 MiB, but everything
#: that matters (the notification, the status fields, the original's headers) comes
#: first, well within this even when a report quotes a whole issue. Parsing and
#: flufl.bounce's line heuristics (each detector reads every body line again) grow with
#: the input, so the cut bounds the work one hostile message can cause.
MAX_REPORT_BYTES = 512 * 1024

#: Header fields kept per message or part: real ones have a few dozen. Every header
#: lookup scans them all, and flufl.bounce's detectors do many lookups.
MAX_HEADERS = 500

#: Characters kept of one header field's value. Some flufl.bounce detectors run the
#: standard library's address parser over the whole From field, which takes seconds on
#: a megabyte of addresses.
MAX_HEADER_CHARS = 8192

#: Parts kept per multipart (and header blocks per delivery-status part, which the
#: parser attaches the same way), and parts looked at in all: a report has three or
#: four parts, a DSN about our mail one block per recipient.
MAX_PARTS = 200

#: Characters of text flufl.bounce's detectors read at most, in all parts together, and
#: per line. Some of their patterns take time quadratic in a line's length (a 40 kB
#: line costs seconds), once per line and pattern; real bounces say what failed in
#: their first few kilobytes, in lines far shorter than this.
FLUFL_TEXT_CHARS = 32 * 1024
FLUFL_LINE_CHARS = 200

#: Characters of decoded notification text searched for a diagnostic line.
MAX_TEXT_CHARS = 64 * 1024

#: Longest header value taken apart into addresses (To, From, Original-Rcpt-To).
_MAX_ADDRESS_HEADER_CHARS = 4096

#: RFC 5322 2.1.1: no line (so no message ID) is longer than 998 octets.
_MAX_ID_CHARS = 998
