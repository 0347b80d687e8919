"""Settings, links, texts and the gateway adapter: what an installer and a duty officer see of them."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from firewatch.contract.db import Alert
from firewatch.contract.settings import Settings, SettingsError
from firewatch.notify.acklink import AckLinkError, AckSigner, Claim, LinkProblem
from firewatch.notify.channels import ChannelError, Channels, Outgoing, redact
from firewatch.notify.config import NotifyConfig, notify_config
from firewatch.notify.templates import Purpose, render

SENT: list[tuple[str, str]] = []


class RecordingGateway:
    """A voice gateway adapter as an installer would write one: `async send(to, text)`."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    async def send(self, to: str, text: str) -> None:
        if to == "000":
            raise RuntimeError("number not reachable")
        SENT.append((to, f"{self.prefix}{text}"))


def alert(**over: object) -> Alert:
    values = {
        "id": 7, "fingerprint": "E1:residual_current", "rule": "residual_current", "severity": "critical",
        "state": "firing", "kind": "electrical", "device_id": "E1", "district": "510104", "site": "Mall-3",
        "zone": "", "metric": "residual_ma", "value": 420.0, "threshold": 300.0, "unit": "mA",
        "summary": "Residual current high", "probable": False, "score": 0.0, "reasons": [],
        "started_ms": 1_763_800_000_000, "last_seen_ms": 1_763_800_000_000,
    }
    return Alert(**(values | over))


@pytest.mark.parametrize(
    ("notify", "key"),
    [
        ({"language": "fr"}, "notify.language"),
        ({"timezone": "Mars/Olympus"}, "notify.timezone"),
        ({"routes": [{"name": "a", "steps": [{"notify": ["team:x"]}]}]}, "notify.routes.0.steps.0.notify"),
        ({"routes": [{"name": "a", "steps": []}]}, "notify.routes.0.steps"),
        ({"routes": [{"name": "a", "steps": [{"notify": ["group:d"], "wait_min": 0}]}]},
         "notify.routes.0.steps.0.wait_min"),
        ({"routes": [{"name": "a", "severity": ["urgent"], "steps": [{"notify": ["group:d"]}]}]},
         "notify.routes.0.severity"),
        ({"routes": [{"name": "a", "group_by": ["colour"], "steps": [{"notify": ["group:d"]}]}]},
         "notify.routes.0.group_by"),
        ({"rate_limit": {"per_person": 0}}, "notify.rate_limit.per_person"),
        ({"gateways": {"voice": {"adapter": "not a module"}}}, "notify.gateways.voice.adapter"),
        ({"link_expiry": 3}, "notify.link_expiry"),
    ],
)
def test_a_bad_notify_setting_names_its_key(tmp_path: Path, notify: dict[str, object], key: str) -> None:
    settings = Settings(notify=notify, up={"data_dir": tmp_path})
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        notify_config(settings)


def test_without_a_secret_one_is_made_once_per_data_folder(tmp_path: Path) -> None:
    settings = Settings(up={"data_dir": tmp_path}, api={"public_url": "https://fw.example.org"})
    first, second = notify_config(settings), notify_config(settings)
    assert first.secret and first.secret == second.secret
    assert first.public_url == "https://fw.example.org" and first.language == "zh"
    assert first.timezone == "Asia/Shanghai"
    other = notify_config(Settings(up={"data_dir": tmp_path / "other"}))
    assert other.secret != first.secret


def test_links_are_bound_to_alert_person_and_time() -> None:
    signer = AckSigner("k", "https://fw/")
    claim = Claim(42, "zhang", 2_000)
    url = signer.page_url(claim)
    assert url.startswith("https://fw/ack/42/")
    token = url.rsplit("/", 1)[1]
    assert signer.verify(42, token, 1_999) == claim
    with pytest.raises(AckLinkError) as expired:
        signer.verify(42, token, 2_000)
    assert expired.value.problem is LinkProblem.EXPIRED
    with pytest.raises(AckLinkError) as other:
        signer.verify(43, token, 1_000)
    assert other.value.problem is LinkProblem.OTHER_ALERT
    for bad in (token[:-1], "x" + token, "nonsense", AckSigner("other-key", "https://fw").token(claim)):
        with pytest.raises(AckLinkError) as tampered:
            signer.verify(42, bad, 1_000)
        assert tampered.value.problem is LinkProblem.TAMPERED


def test_english_text_says_what_where_value_since_and_link() -> None:
    text = render(alert(probable=True, score=0.91, reasons=["cable temperature rising"]), Purpose.PAGE, "en",
                  ZoneInfo("Asia/Shanghai"), address="1 Hongxing Rd", link="https://fw/ack/7/t", more=3)
    assert text.title == "[CRITICAL] Residual current high"
    for expected in ("Mall-3 · 510104", "1 Hongxing Rd", "420mA (threshold 300mA)", "Since: 2025-11-22 16:26:40",
                     "fire score 91%: cable temperature rising", "3 more alerts", "https://fw/ack/7/t"):
        assert expected in text.body


async def test_gateway_adapter_sends_and_its_failure_is_a_channel_error() -> None:
    config = NotifyConfig(secret="s", gateways={
        "voice": {"adapter": "tests.test_notify_channels:RecordingGateway", "options": {"prefix": "VOICE "}},
    })
    channels = Channels(config)
    out = Outgoing("【火警】P1", "地点：Mall-3", "fire", "page", {})
    await channels.get("gateway://voice/13800000000").send(out)
    assert SENT[-1] == ("13800000000", "VOICE 【火警】P1\n地点：Mall-3")
    with pytest.raises(ChannelError, match="not reachable"):
        await channels.get("gateway://voice/000").send(out)
    with pytest.raises(ChannelError, match="no gateway named 'sms'"):
        channels.get("gateway://sms/1")


async def test_unknown_channel_url_fails_the_send_with_a_reason() -> None:
    with pytest.raises(ChannelError, match="does not understand"):
        await Channels(NotifyConfig(secret="s")).get("carrierpigeon://coop").send(
            Outgoing("t", "b", "fire", "page", {}))


def test_delivery_log_keeps_no_secrets_of_channel_urls() -> None:
    for url in ("mailto://user:pa55word@smtp.example.org?to=a@b.org", "dingtalk://tokensecret123/",
                "feishu://abcdefsecret/", "ntfys://tk_secretvalue@ntfy.sh/duty",
                "webhook+https://hooks.example.org/in/secretpath?key=secretkey", "gateway://voice/13800001234"):
        shown = redact(url)
        assert "secret" not in shown and "pa55word" not in shown and "13800001234" not in shown, shown
        assert shown.split("://")[0] == url.split("://")[0]


async def test_a_failed_phone_send_says_what_the_service_answered() -> None:
    from firewatch.services import free_port

    with pytest.raises(ChannelError, match="Connection error"):
        await Channels(NotifyConfig(secret="s")).get(f"ntfy://127.0.0.1:{free_port()}/duty").send(
            Outgoing("t", "b", "fire", "page", {}))
