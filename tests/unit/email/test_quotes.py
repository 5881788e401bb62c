"""strip_quoted_reply against GitHub email_reply_parser's real bodies and built examples.

The corpus expectations follow upstream's visible fragments (test/email_reply_parser_test.rb and
its ports): quoted text *below* the reply and the "On ... wrote:" header above it are hidden,
quotes followed by new text (bottom posting) stay, "Sent from my iPhone" and ``--`` signatures go.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from inbox_daemon.channels.email.parse import strip_quoted_reply

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
REPLIES = CORPUS / "github-email_reply_parser"


def corpus_text(name: str) -> str:
    path = REPLIES / name
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus file missing in CI: {path}")
        pytest.skip(f"corpus not available: {path}")
    return path.read_bytes().decode("utf-8")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("email_1_4.txt", "Awesome! I haven't had another problem with it."),
        ("email_1_7.txt", ":+1:"),
        ("email_2_1.txt", "Outlook with a reply"),
        ("email_2_2.txt", "Outlook with a reply directly above line"),
        ("email_2_3.txt", "Outlook with a reply directly above line"),
        ("email_iPhone.txt", "Here is another email"),
        ("email_BlackBerry.txt", "Here is another email"),
        ("email_multi_word_sent_from_my_mobile_device.txt", "Here is another email"),
        ("correct_sig.txt", "this is an email with a correct -- signature."),
        (
            "email_1_3.txt",
            "Oh thanks.\n\nHaving the function would be great.\n\n-Abhishek Kona",
        ),
        (
            "email_1_1.txt",
            "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\n"
            "running a test?\nI am currently using the Java HTTP API.\n\n-Abhishek Kona",
        ),
        (
            "email_one_is_not_on.txt",
            "Thank, this is really helpful.\n\nOne outstanding question I had:\n\n"
            "Locally (on development), when I run...",
        ),
        (
            "greedy_on.txt",
            "On your remote host you can run:\n\n     telnet 127.0.0.1 52698\n\n"
            "This should connect to TextMate (on your Mac, via the tunnel). If that\n"
            "fails, the tunnel is not working.",
        ),
        (
            "pathological.txt",
            "I think you're onto something. I will try to fix the problem as soon as I\n"
            "get back to a computer.",
        ),
        (
            "email_bullets.txt",
            "test 2 this should list second\n\nand have spaces\n\nand retain this formatting\n\n\n"
            "   - how about bullets\n   - and another",
        ),
        (
            "email_1_6.txt",
            "I get proper rendering as well.\n\nSent from a magnificent torch of pixels",
        ),
    ],
)
def test_corpus_replies(name: str, expected: str) -> None:
    assert strip_quoted_reply(corpus_text(name)) == expected


@pytest.mark.parametrize(
    "name",
    [
        "email_sig_delimiter_in_middle_of_line.txt",
        "email_sent_from_my_not_signature.txt",
        "email_1_5.txt",
    ],
)
def test_corpus_bodies_without_quotes_are_unchanged(name: str) -> None:
    text = corpus_text(name)
    assert strip_quoted_reply(text) == text.strip("\n")


def test_bottom_posted_reply_keeps_the_inner_quote_and_drops_the_trailing_one() -> None:
    result = strip_quoted_reply(corpus_text("email_1_2.txt"))
    assert result.startswith("Hi,\nOn Tue, 2011-03-01 at 18:02 +0530, Abhishek Kona wrote:\n> Hi")
    assert result.endswith('need to delete them all individually."')
    assert "riak-users mailing list" not in result
    assert "> -Abhishek Kona" not in result


def test_interleaved_reply_keeps_its_context_and_drops_the_signature() -> None:
    result = strip_quoted_reply(corpus_text("email_1_8.txt"))
    assert result.startswith(
        "On Tue, Apr 29, 2014 at 4:22 PM, Example Dev <sugar@example.com>wrote:"
    )
    assert result.endswith("> okay?\n>\n\nand under this.")
    assert "Hey there, this is my signature" not in result


def test_long_quote_line_is_fast() -> None:
    text = corpus_text("email_long_quote.txt")
    started = time.perf_counter()
    result = strip_quoted_reply(text)
    assert time.perf_counter() - started < 1.0
    assert result.startswith("Hi folks\n\nWhat is the best way")
    assert result.endswith("-Abhishek Kona")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks!\n\nOn Mon, 1 Jan 2024, Bob <b@x.org> wrote:\n> old\n> text\n", "Thanks!"),
        ("Thanks!\r\n\r\nBob Smith <b@x.org> wrote:\r\n> old\r\n", "Thanks!"),
        ("Danke.\n\nAm 01.03.2024 um 18:02 schrieb Bob <b@x.org>:\n\n> alt\n", "Danke."),
        ("Merci.\n\nLe 1 mars 2024 à 18:02, Bob <b@x.org> a écrit :\nancien texte\n", "Merci."),
        ("Gracias.\n\nEl lun, 1 ene 2024 a las 10:00, Bob escribió:\n> viejo\n", "Gracias."),
        ("Bedankt.\n\nOp 1 jan. 2024 om 10:00 schreef Bob <b@x.org>:\n> oud\n", "Bedankt."),
        ("Grazie.\n\nIl giorno lun 1 gen 2024, Bob ha scritto:\n> vecchio\n", "Grazie."),
        (
            "Please refund.\n\n-----Original Message-----\nFrom: Shop\nSent: Monday\n\nold text",
            "Please refund.",
        ),
        ("Bitte.\n\n-----Ursprüngliche Nachricht-----\nVon: Shop\nalt", "Bitte."),
        (
            "Yes please.\n\n________________________________\nFrom: Shop <s@shop.example>\n"
            "Sent: Monday, 1 January 2024 10:00\nTo: Jane\nSubject: Your order\n\nold",
            "Yes please.",
        ),
        (
            "Ja.\n\nVon: Shop <s@shop.example>\nGesendet: Montag, 1. Januar 2024\nAn: Jane\n\nalt",
            "Ja.",
        ),
        ("Done.\n\n-- \nJane Doe\nACME Corp", "Done."),
        ("Sure.\n\n## Please reply above this line ##\n\nCase 77: old", "Sure."),
    ],
)
def test_quote_styles(text: str, expected: str) -> None:
    assert strip_quoted_reply(text) == expected


def test_forwarded_message_is_not_stripped() -> None:
    text = (
        "Please look at this.\n\n---------- Forwarded message ---------\n"
        "From: Bank <info@bank.example>\nDate: Mon, 1 Jan 2024\nSubject: Payment\n\nPaid 10 EUR."
    )
    assert strip_quoted_reply(text) == text


def test_a_mail_that_is_only_a_quote_is_returned_whole() -> None:
    text = "> only quoted\n> lines here\n"
    assert strip_quoted_reply(text) == "> only quoted\n> lines here"


def test_mention_of_writing_is_not_a_quote_header() -> None:
    text = "On Monday my colleague said the parcel left.\nHere is what she wrote:\nIt left."
    assert strip_quoted_reply(text) == text
