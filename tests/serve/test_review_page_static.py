"""The review page's files (no browser needed): the queue's filter and paging controls, the decision badge, the
prediction set, the unknown score, the explanation picture and the drift details are there, with no inline code
and no resource from another host (the page works offline under the strict CSP)."""
from __future__ import annotations

import re

from adrcs.serve.web import PAGE, PAGE_STATIC


def test_page_has_the_queue_controls():
    html = PAGE.read_text()
    for control in ('id="filters"', 'id="f-lot"', 'id="f-cls"', 'id="f-decision"', 'id="f-since"', 'id="f-until"',
                    'id="prev"', 'id="next"', 'id="pageinfo"', 'id="driftstat"', 'id="driftchanges"',
                    'id="driftunknown"', 'value="unknown"', 'value="review"'):
        assert control in html, control
    assert 'type="date"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and "<style" not in html and " style=" not in html
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", html, re.I)  # no inline event handlers
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from another host


def test_script_uses_the_queue_and_shows_the_trust_answer():
    js = (PAGE_STATIC / "review.js").read_text()
    for piece in ('queue: "true"', '"decision"', "f-since", "f-until", "offset", "explanation.png", "decisionBadge",
                  "item.set", "item.unknown_score", "IntersectionObserver", "st.threshold", "u.reference",
                  "d.changes"):
        assert piece in js, piece
    assert "innerHTML" not in js and "eval(" not in js  # server data goes in as text
    css = (PAGE_STATIC / "review.css").read_text()
    assert ".badge.unknown" in css and ".badge.review" in css
