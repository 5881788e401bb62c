"""``/case document`` through signed requests to the real slack-bolt app: the case's PDF comes
to the agent as a file in a direct message (the upload of the Slack stand-in), with the public
conversation and never the internal notes; refusals and a refused upload are one line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pypdf
from slack_helpers import AGENTS_CHANNEL, ALICE, STRANGER, World, message_event

from inbox_daemon.document import TEMPLATE_NAME

NOTE = "INTERNAL-NOTE-4410 refund only if they insist"
REPLY = "Please switch it off at the wall."


def pdf_text(content: bytes | None) -> str:
    assert content is not None
    assert content.startswith(b"%PDF-")
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(content)).pages)


async def a_case_with_a_reply_and_a_note(world: World) -> None:
    await world.event(message_event("My printer is on fire"))
    await world.settle()
    card = await world.card("CAS-000001")
    for text in (REPLY, f"!note {NOTE}"):
        event = message_event(text, user=ALICE, channel=AGENTS_CHANNEL, thread_ts=card.ts)
        assert (await world.event(event))[0] == 200
    await world.settle()
    kinds = [(a.kind, a.direction) for a in await world.activities("CAS-000001")]
    assert ("note", "internal") in kinds


def ephemerals(world: World, user: str) -> list[str]:
    return [c["text"] for c in world.api.calls_to("chat.postEphemeral") if c["user"] == user]


async def test_case_document_comes_as_a_pdf_in_a_direct_message(world: World) -> None:
    await a_case_with_a_reply_and_a_note(world)
    before = await world.svc.show("CAS-000001")
    status, body = await world.command("document cas-000001")
    assert status == 200
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == "CAS-000001: its document comes as a direct message from me."
    await world.settle()

    [upload] = world.api.uploads.values()
    assert upload.channel == "D01ALICE"  # conversations.open with Alice: her DM
    assert (upload.filename, upload.title) == (
        "CAS-000001.pdf",
        "CAS-000001: My printer is on fire",
    )
    assert "CAS-000001" in (upload.initial_comment or "")
    text = pdf_text(upload.content)
    for shown in ("CAS-000001", "My printer is on fire", REPLY):
        assert shown in text, shown
    assert "INTERNAL-NOTE" not in text
    after = await world.svc.show("CAS-000001")  # a document changes nothing on the case
    assert (after.case, len(after.activities), len(after.audit)) == (
        before.case, len(before.activities), len(before.audit),
    )  # fmt: skip


async def test_an_admins_template_is_used(world: World, tmp_path: Path) -> None:
    await a_case_with_a_reply_and_a_note(world)
    (tmp_path / TEMPLATE_NAME).write_text("<h1>Ours: {{ case.number }}</h1>")
    world.agents.document_folder = tmp_path
    await world.command("document CAS-000001")
    await world.settle()
    [upload] = world.api.uploads.values()
    assert "Ours: CAS-000001" in pdf_text(upload.content)


async def test_case_document_refusals_are_one_line(world: World, tmp_path: Path) -> None:
    await a_case_with_a_reply_and_a_note(world)
    missing = json.loads((await world.command("document CAS-999999"))[1])
    assert missing["text"].startswith(":warning:")
    assert "CAS-999999" in missing["text"]
    stranger = json.loads((await world.command("document CAS-000001", user=STRANGER))[1])
    assert "is not an agent" in stranger["text"]
    bare = json.loads((await world.command("document"))[1])
    assert "needs a case number" in bare["text"]

    (tmp_path / TEMPLATE_NAME).write_text("<h1>{{ case.number }\n")
    world.agents.document_folder = tmp_path
    broken = json.loads((await world.command("document CAS-000001"))[1])
    assert broken["text"].startswith(f":warning: {tmp_path / TEMPLATE_NAME}:1: ")
    assert "\n" not in broken["text"]
    await world.settle()
    assert world.api.uploads == {}


async def test_a_refused_upload_tells_the_agent_the_command_to_run(world: World) -> None:
    await a_case_with_a_reply_and_a_note(world)
    world.api.fail("files.completeUploadExternal", "not_allowed_token_type")
    answer = json.loads((await world.command("document CAS-000001"))[1])
    assert "direct message" in answer["text"]
    await world.settle()
    [told] = [t for t in ephemerals(world, ALICE) if "document" in t]
    assert told == (
        ":warning: Slack would not take CAS-000001's document (not_allowed_token_type); on the"
        " server: `inbox-daemon cases document CAS-000001 --format pdf -o CAS-000001.pdf`"
    )
