"""The sandbox in a real browser: what a newcomer does, from an alert to a finished thread."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from bot.sandbox import workspace
from bot.sandbox.workspace import SeededOperation
from tests.sandbox_process import Sandbox

FOLLOW_UP_TIMEOUT_MS = 30_000  # a few polls of the stand-in, one to three seconds apart


def open_as(page: Page, sandbox: Sandbox, user: str) -> None:
    page.goto(sandbox.url + "/")
    page.locator(f"input[name=user][value={user}]").check()
    expect(page.locator("article[data-author=U0ALERTS]").first).to_be_visible()


def alert_for(page: Page, operation: SeededOperation) -> Locator:
    return page.locator("article[data-author=U0ALERTS]", has_text=operation.operation_id)


def badge(page: Page, operation: SeededOperation) -> Locator:
    return page.locator(f".operation[data-name='{operation.name}'] .badge")


def send(page: Page, text: str) -> None:
    """Type in the composer and press Enter."""
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def use_the_shortcut(message: Locator) -> None:
    """More actions → Cancel operation, on a message."""
    message.get_by_role("button", name="More actions").click()
    message.get_by_role("menuitem", name="Cancel operation").click()


def confirm(page: Page, operation: SeededOperation) -> None:
    """The confirmation shows the live operation; Cancel operation sends the cancel."""
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(operation.operation_id)
    expect(dialog).to_contain_text("Running")
    dialog.locator("[data-modal=submit]").click()
    expect(dialog).to_have_count(0)  # closed: the alert's thread speaks from here


def test_the_on_call_engineer_cancels_from_the_alert_in_two_clicks(
    page: Page, sandbox: Sandbox, screenshot: Any
) -> None:
    operation = workspace.CANCELS
    open_as(page, sandbox, workspace.ONCALL)
    alert = alert_for(page, operation)
    expect(badge(page, operation)).to_have_text("running")
    screenshot(page, "alert")

    alert.get_by_role("button", name="Cancel operation").click()  # click one
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("[data-modal=submit]")).to_have_text("Cancel operation")
    expect(dialog).to_contain_text("Cancelling is best effort")
    # What the modal shows was read from Google just now: the panel counts that GET, and
    # names the service account Ada's binding acts as, whose token it carried.
    expect(page.locator(f".operation[data-name='{operation.name}']")).to_contain_text("1 GET")
    expect(dialog).to_contain_text(f"Acting in Google Cloud as {workspace.IMPERSONATED}")
    identity = page.locator(f".operation[data-name='{operation.name}'] .op-identity")
    expect(identity).to_have_text(f"1 GET as {workspace.IMPERSONATED}")
    expect(page.locator("#iam")).to_contain_text(workspace.IMPERSONATED)
    screenshot(page, "confirmation")
    confirm(page, operation)  # click two

    thread = alert.locator(".thread")
    expect(thread).to_contain_text("@Ada asked to cancel")
    expect(thread).to_contain_text("Google accepted the cancel request (OK)")
    expect(thread).to_contain_text("was cancelled", timeout=FOLLOW_UP_TIMEOUT_MS)
    expect(thread).to_contain_text("CANCELLED (code 1)")
    expect(badge(page, operation)).to_have_text("CANCELLED")
    # Google's status stops moving where the cancel stopped it.
    status = page.locator(f".operation[data-name='{operation.name}'] .op-status")
    expect(status).to_contain_text("Cancelled at")
    thread.scroll_into_view_if_needed()
    screenshot(page, "finished-thread")


def test_someone_not_in_the_allowlist_is_refused_and_nothing_is_sent(
    page: Page, sandbox: Sandbox
) -> None:
    operation = workspace.FAILS
    open_as(page, sandbox, workspace.NOT_ALLOWED)
    send(page, f"/cancel-op {operation.name}")
    refusal = page.locator("article.ephemeral", has_text=operation.operation_id)
    expect(refusal).to_contain_text("You may not do that")
    expect(refusal).to_contain_text("Only visible to you")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(badge(page, operation)).to_have_text("running")  # no "cancel requested"


def test_an_operation_that_completes_anyway_is_reported_as_completed(
    page: Page, sandbox: Sandbox
) -> None:
    """Grace is allowed through the on-call user group, not by name."""
    operation = workspace.COMPLETES
    open_as(page, sandbox, workspace.ROTATION_MEMBER)
    alert = alert_for(page, operation)
    alert.get_by_role("button", name="Cancel operation").click()
    confirm(page, operation)
    thread = alert.locator(".thread")
    expect(thread).to_contain_text("@Grace asked to cancel")
    expect(thread).to_contain_text("despite the cancellation", timeout=FOLLOW_UP_TIMEOUT_MS)
    expect(thread).to_contain_text("completed at")
    expect(badge(page, operation)).to_have_text("completed")


def test_the_message_shortcut_on_a_plain_alert_reports_a_refused_cancel(
    page: Page, sandbox: Sandbox
) -> None:
    operation = workspace.NOT_CANCELLABLE
    open_as(page, sandbox, workspace.ONCALL)
    alert = alert_for(page, operation)
    use_the_shortcut(alert)
    confirm(page, operation)
    thread = alert.locator(".thread")
    expect(thread).to_contain_text("FAILED_PRECONDITION", timeout=FOLLOW_UP_TIMEOUT_MS)
    expect(badge(page, operation)).to_have_text("running")


def test_a_cancel_from_the_list_says_plainly_that_google_cannot_cancel_it(
    page: Page, sandbox: Sandbox
) -> None:
    """`list` replies only to you, with a Cancel button per running operation."""
    operation = workspace.UNIMPLEMENTED
    open_as(page, sandbox, workspace.ONCALL)
    send(page, f"/cancel-op list {workspace.PARENT}")
    listing = page.locator("article.ephemeral", has_text="running operations in")
    expect(listing).to_contain_text("Only visible to you")
    row = listing.locator(".block-section", has_text=operation.operation_id)
    row.get_by_role("button", name="Cancel…").click()
    confirm(page, operation)
    # An ephemeral reply has no thread: the request starts one in the channel.
    request = page.locator("article[data-author=U0BOT]", has_text="asked to cancel").filter(
        has_text=operation.operation_id
    )
    thread = request.locator(".thread")
    expect(thread).to_contain_text("UNIMPLEMENTED", timeout=FOLLOW_UP_TIMEOUT_MS)
    expect(thread).to_contain_text("Next:")
    expect(badge(page, operation)).to_have_text("running")


def test_a_message_naming_two_operations_asks_which_and_keep_running_sends_nothing(
    page: Page, sandbox: Sandbox
) -> None:
    first, second = workspace.ALREADY_DONE, workspace.FAILS
    open_as(page, sandbox, workspace.ROTATION_MEMBER)
    send(page, f"Both stuck? `{first.name}` and `{second.name}`")
    mine = page.locator("article[data-author=U0GRACE]", has_text="Both stuck?")
    use_the_shortcut(mine)
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("names several operations")
    dialog.locator(".block-section", has_text=second.operation_id).get_by_role(
        "button", name="Choose"
    ).click()
    expect(dialog).to_contain_text("Cancelling is best effort")
    expect(dialog).to_contain_text(second.operation_id)
    dialog.get_by_role("button", name="Keep running").click()
    expect(dialog).to_have_count(0)
    expect(badge(page, second)).to_have_text("running")
    expect(page.locator("article[data-author=U0BOT]", has_text=second.operation_id)).to_have_count(
        0
    )


def test_every_block_a_modal_may_hold_is_drawn_and_a_crafted_modal_is_refused(
    page: Page, sandbox: Sandbox
) -> None:
    """Inputs and selects, which the bot does not use yet, are drawn and submitted too; a
    modal changed behind the bot's back (no signed metadata) is refused when submitted."""
    open_as(page, sandbox, workspace.ROTATION_MEMBER)
    send(page, f"/cancel-op {workspace.ALREADY_DONE.name}")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("already finished")
    state = httpx.get(f"{sandbox.url}/client/state?user={workspace.ROTATION_MEMBER}").json()
    option = {"text": {"type": "plain_text", "text": "Roll back"}, "value": "rollback"}
    crafted = {
        "type": "modal",
        "callback_id": "cancel_op_confirm",
        "title": {"type": "plain_text", "text": "Crafted"},
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Every block"}},
            {"type": "input", "block_id": "why", "label": {"type": "plain_text", "text": "Why"},
             "element": {"type": "plain_text_input", "action_id": "text"}},
            {"type": "input", "block_id": "next", "label": {"type": "plain_text", "text": "Next"},
             "element": {"type": "static_select", "action_id": "pick", "options": [option]}},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "_small print_"}]},
            {"type": "actions", "elements": [{"type": "button", "action_id": "noop",
                                              "text": {"type": "plain_text", "text": "Noop"}}]},
        ],
    }  # fmt: skip
    updated = httpx.post(
        f"{sandbox.url}/api/views.update",
        json={"view_id": state["modals"][-1]["id"], "view": crafted},
    ).json()
    assert updated["ok"], updated
    expect(dialog.locator(".block-header")).to_have_text("Every block")
    dialog.get_by_label("Why").fill("testing")
    dialog.get_by_label("Next").select_option("rollback")
    expect(dialog.locator(".block-context i")).to_have_text("small print")
    expect(dialog.get_by_role("button", name="Noop")).to_be_visible()
    dialog.get_by_role("button", name="Send").click()
    expect(dialog).to_contain_text("was not issued by me, or was changed")


def alert_ts(sandbox: Sandbox, operation: SeededOperation) -> str:
    seen = httpx.get(f"{sandbox.url}/client/state?user={workspace.ONCALL}", timeout=30).json()
    alert = [m for m in seen["messages"] if operation.name in m["text"] and not m["thread_ts"]]
    return str(alert[0]["ts"])


def post_as_pipeline(sandbox: Sandbox, **message: Any) -> None:
    headers = {"Authorization": f"Bearer {workspace.ALERTS_TOKEN}"}
    url = f"{sandbox.url}/api/chat.postMessage"
    posted = httpx.post(url, json={"channel": workspace.CHANNEL, **message}, headers=headers)
    assert posted.json()["ok"]


def test_see_the_thread_opens_the_thread_on_this_page(page: Page, sandbox: Sandbox) -> None:
    """A permalink from chat.getPermalink points at the page, which scrolls to the thread."""
    operation = workspace.NOT_CANCELLABLE  # the oldest alert, at the top
    ts = alert_ts(sandbox, operation)
    answer = httpx.post(
        f"{sandbox.url}/api/chat.getPermalink",
        json={"channel": workspace.CHANNEL, "message_ts": ts},
    ).json()
    assert answer["permalink"] == f"{sandbox.url}/#thread={workspace.CHANNEL}/{ts}"
    page.set_viewport_size({"width": 1024, "height": 600})
    open_as(page, sandbox, workspace.ONCALL)
    post_as_pipeline(sandbox, text=f"Already on it. <{answer['permalink']}|See the thread>.")
    alert = alert_for(page, operation)
    expect(alert).not_to_be_in_viewport()
    page.get_by_role("link", name="See the thread").last.click()
    expect(alert).to_be_in_viewport()
    expect(alert).to_have_class("message highlighted")
    expect(page).to_have_url(sandbox.url + "/")  # the same page, and the link works again

    page.goto(answer["permalink"])  # opened from elsewhere, in a fresh tab
    expect(alert_for(page, operation)).to_be_in_viewport()
    expect(alert_for(page, operation)).to_have_class("message highlighted")


def test_a_reply_out_of_view_gets_a_pill_that_goes_to_it(page: Page, sandbox: Sandbox) -> None:
    operation = workspace.NOT_CANCELLABLE
    page.set_viewport_size({"width": 1024, "height": 600})
    open_as(page, sandbox, workspace.NOT_ALLOWED)  # who has no modal open in this sandbox
    alert = alert_for(page, operation)
    expect(alert).not_to_be_in_viewport()
    pill = page.locator("#new-reply")
    expect(pill).to_be_hidden()
    post_as_pipeline(
        sandbox, thread_ts=alert_ts(sandbox, operation), text="Still deleting: retried 3 times"
    )
    expect(pill).to_have_text("New reply in a thread above ↑")
    pill.click()
    expect(page.locator(".thread article", has_text="retried 3 times")).to_be_in_viewport()
    expect(pill).to_be_hidden()


def test_escape_and_a_click_outside_close_the_modal(page: Page, sandbox: Sandbox) -> None:
    open_as(page, sandbox, workspace.ONCALL)
    dialog = page.get_by_role("dialog")

    def press_escape() -> None:
        page.keyboard.press("Escape")

    def click_outside() -> None:
        page.mouse.click(8, 8)

    for close in (press_escape, click_outside):
        send(page, f"/cancel-op {workspace.ALREADY_DONE.name}")
        expect(dialog).to_contain_text("already finished")
        close()
        expect(dialog).to_have_count(0)
        seen = httpx.get(f"{sandbox.url}/client/state?user={workspace.ONCALL}").json()
        assert seen["modals"] == []  # closed at Slack's end too, not only hidden


def test_at_1024_px_the_channel_keeps_room_to_read(page: Page, sandbox: Sandbox) -> None:
    page.set_viewport_size({"width": 1024, "height": 768})
    open_as(page, sandbox, workspace.ONCALL)
    channel = page.locator("main.channel").bounding_box()
    assert channel is not None and channel["width"] >= 600
    assert page.locator(".operations").bounding_box() is not None  # narrower, not gone


def test_a_date_token_shows_each_reader_their_own_zone(browser: Any, sandbox: Sandbox) -> None:
    """The bot writes times as Slack's <!date^…> tokens; the page renders them as Slack
    does, in the reader's zone, and falls back to the text after | when it cannot."""
    moment = int(datetime(2026, 11, 18, 8, 26, 40, tzinfo=UTC).timestamp())
    post_as_pipeline(
        sandbox,
        text=f"Ended <!date^{moment}^{{date_num}} {{time_secs}}|2026-11-18 08:26 UTC>. "
        "Broken <!date^soon^{date_num}|as written>.",
    )
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 1360, "height": 860})
    try:
        page = context.new_page()
        open_as(page, sandbox, workspace.ONCALL)
        message = page.locator("article", has_text="Ended ").last
        expect(message).to_contain_text("Ended 2026-11-18 5:26:40 PM.")  # UTC+9
        expect(message).to_contain_text("Broken as written.")
    finally:
        context.close()


def test_a_protected_operation_is_cancelled_only_after_a_second_person_approves(
    page: Page, sandbox: Sandbox, screenshot: Any
) -> None:
    """Ada asks, Sam's click is refused, Grace approves: then, and only then, the cancel."""
    operation = workspace.PROTECTED
    open_as_without_modals(page, sandbox, workspace.ONCALL)
    alert = alert_for(page, operation)
    alert.get_by_role("button", name="Cancel operation").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("a second person must approve the cancel")
    expect(dialog.locator("[data-modal=submit]")).to_have_text("Ask for approval")
    dialog.get_by_label("Why cancel it?").fill("Purge started outside the change window")
    dialog.locator("[data-modal=submit]").click()
    expect(dialog).to_have_count(0)
    thread = alert.locator(".thread")
    expect(thread).to_contain_text("needs a second person's approval")
    expect(thread).to_contain_text("Purge started outside the change window")
    expect(badge(page, operation)).to_have_text("running")  # nothing went to Google

    open_as_without_modals(page, sandbox, workspace.NOT_ALLOWED)
    alert = alert_for(page, operation)
    alert.locator(".thread").get_by_role("button", name="Approve").click()
    refusal = page.locator("article.ephemeral", has_text="may decide this request")
    expect(refusal).to_contain_text("Only visible to you")
    expect(badge(page, operation)).to_have_text("running")

    open_as_without_modals(page, sandbox, workspace.ROTATION_MEMBER)
    alert = alert_for(page, operation)
    thread = alert.locator(".thread")
    thread.scroll_into_view_if_needed()
    screenshot(page, "approval-request")
    thread.get_by_role("button", name="Approve").click()
    expect(thread).to_contain_text("@Grace approved @Ada's request")
    expect(thread.get_by_role("button", name="Approve")).to_have_count(0)
    expect(thread).to_contain_text("Google accepted the cancel request (OK)")
    expect(thread).to_contain_text("was cancelled", timeout=FOLLOW_UP_TIMEOUT_MS)
    expect(thread).to_contain_text("approved by @Grace")
    expect(badge(page, operation)).to_have_text("CANCELLED")
    thread.scroll_into_view_if_needed()
    screenshot(page, "approval-thread")


def open_as_without_modals(page: Page, sandbox: Sandbox, user: str) -> None:
    """As `user`, with any modal an earlier test left open for them closed."""
    open_as(page, sandbox, user)
    seen = httpx.get(f"{sandbox.url}/client/state?user={user}", timeout=30).json()
    dialogs = page.get_by_role("dialog")
    if seen["modals"]:
        expect(dialogs).not_to_have_count(0)
        dialogs.first.locator("[data-modal=close]").click()  # closes those above it too
    expect(dialogs).to_have_count(0)
