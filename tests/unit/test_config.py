"""service/config.py: settings come from HERALD_* variables, typed, or not at all."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from service.config import ConfigError, Settings, load_settings

INT_FIELDS = [
    f.name
    for f in dataclasses.fields(Settings)
    if isinstance(f.default, int) and not isinstance(f.default, bool)
]
FLOAT_FIELDS = [f.name for f in dataclasses.fields(Settings) if isinstance(f.default, float)]
BOOL_FIELDS = [f.name for f in dataclasses.fields(Settings) if isinstance(f.default, bool)]


def variable(name: str) -> str:
    return f"HERALD_{name.upper()}"


def test_defaults_without_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.bind == "127.0.0.1:8080"
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.topic_list == ()
    assert settings.auto_create_topics is True
    assert settings.topic_pattern.fullmatch("notifications")


def test_host_and_port_come_from_bind() -> None:
    settings = load_settings({"HERALD_BIND": "0.0.0.0:9000"})
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)


def test_ipv6_bind_splits_at_the_last_colon() -> None:
    settings = load_settings({"HERALD_BIND": "[::1]:8080"})
    assert (settings.host, settings.port) == ("[::1]", 8080)


def test_strings_are_taken_as_given() -> None:
    settings = load_settings({"HERALD_KAFKA_BOOTSTRAP": "k1:9092,k2:9092"})
    assert settings.kafka_bootstrap == "k1:9092,k2:9092"


def test_ints_are_parsed() -> None:
    settings = load_settings({"HERALD_RING_SIZE": "5", "HERALD_SSE_RETRY_MS": " 250 "})
    assert (settings.ring_size, settings.sse_retry_ms) == (5, 250)


def test_floats_are_parsed() -> None:
    settings = load_settings({"HERALD_SSE_HEARTBEAT_S": "2.5", "HERALD_PUBLISH_TIMEOUT_S": "3"})
    assert (settings.sse_heartbeat_s, settings.publish_timeout_s) == (2.5, 3.0)
    assert isinstance(settings.publish_timeout_s, float)


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " True "])
def test_true_bools_are_parsed(raw: str) -> None:
    assert load_settings({"HERALD_AUTO_CREATE_TOPICS": raw}).auto_create_topics is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off", " OFF "])
def test_false_bools_are_parsed(raw: str) -> None:
    assert load_settings({"HERALD_AUTO_CREATE_TOPICS": raw}).auto_create_topics is False


def test_tuples_are_comma_separated_and_trimmed() -> None:
    settings = load_settings({"HERALD_TOPIC_LIST": " orders, payments,,audit.log ,"})
    assert settings.topic_list == ("orders", "payments", "audit.log")


def test_variables_without_the_herald_prefix_are_ignored() -> None:
    assert load_settings({"RING_SIZE": "7", "PATH": "/bin"}) == Settings()


def test_an_unknown_herald_variable_is_an_error_that_names_it() -> None:
    with pytest.raises(ConfigError, match="HERALD_NO_SUCH_SETTING is not a Herald setting"):
        load_settings({"HERALD_NO_SUCH_SETTING": "x"})


def test_a_misspelt_variable_is_named_with_the_setting_it_resembles() -> None:
    with pytest.raises(ConfigError, match=r"HERALD_RING_SIZ .*did you mean HERALD_RING_SIZE\?"):
        load_settings({"HERALD_RING_SIZ": "7"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HERALD_SERVICE_HOST", "10.0.0.1"),
        ("HERALD_SERVICE_PORT_HTTP", "80"),
        ("HERALD_PORT", "tcp://10.0.0.1:80"),
        ("HERALD_PORT_80_TCP_ADDR", "10.0.0.1"),
    ],
)
def test_kubernetes_service_links_are_refused_with_what_to_do(variable: str, value: str) -> None:
    # Still an error (nothing unknown passes), but one that says where it came from.
    with pytest.raises(ConfigError, match=f"{variable} .*enableServiceLinks: false"):
        load_settings({variable: value})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HERALD_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("HERALD_KAFKA_SASL_MECHANISM", "GSSAPI"),
        ("HERALD_DIRECT_WRITES", "on"),
    ],
)
def test_a_setting_with_choices_refuses_any_other_value(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable} must be one of"):
        load_settings({variable: value})


def test_sasl_needs_a_username() -> None:
    with pytest.raises(ConfigError, match="HERALD_KAFKA_SASL_USERNAME"):
        load_settings({"HERALD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})


def test_a_file_setting_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HERALD_KAFKA_SSL_CA_FILE names no readable file"):
        load_settings({"HERALD_KAFKA_SSL_CA_FILE": str(tmp_path / "missing.pem")})


def test_the_sasl_password_comes_from_its_file_when_one_is_given(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = load_settings(
        {
            "HERALD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "HERALD_KAFKA_SASL_USERNAME": "herald",
            "HERALD_KAFKA_SASL_PASSWORD": "ignored",
            "HERALD_KAFKA_SASL_PASSWORD_FILE": str(secret),
        }
    )
    assert settings.kafka_sasl_password_value() == "s3cret"


def test_the_process_environment_is_read_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_RING_SIZE", "17")
    assert load_settings().ring_size == 17


@pytest.mark.parametrize("name", INT_FIELDS)
@pytest.mark.parametrize("raw", ["ten", "1.5", ""])
def test_a_bad_int_raises_config_error_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable(name)):
        load_settings({variable(name): raw})


@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_a_bad_float_raises_config_error_naming_the_variable(name: str) -> None:
    with pytest.raises(ConfigError, match=variable(name)):
        load_settings({variable(name): "soon"})


@pytest.mark.parametrize("name", BOOL_FIELDS)
@pytest.mark.parametrize("raw", ["maybe", "", "2"])
def test_a_bad_bool_raises_config_error_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=variable(name)):
        load_settings({variable(name): raw})


@pytest.mark.parametrize(
    "name",
    [
        "topic_partitions",
        "topic_replication",
        "ring_size",
        "subscriber_queue_size",
        "snapshot_limit",
        "max_body_bytes",
        "max_batch_events",
    ],
)
def test_sizes_below_one_raise_config_error_naming_the_variable(name: str) -> None:
    with pytest.raises(ConfigError, match=variable(name)):
        load_settings({variable(name): "0"})


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("name", ["fan_out_pause", "send_timeout_s"])
def test_a_float_setting_must_be_finite(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable(name)} must be a float"):
        load_settings({variable(name): raw})


@pytest.mark.parametrize("name", ["fan_out_pause", "jwt_cache_size", "gc_threshold"])
def test_negative_counts_raise_config_error_naming_the_variable(name: str) -> None:
    with pytest.raises(ConfigError, match=variable(name)):
        load_settings({variable(name): "-1"})
    assert getattr(load_settings({variable(name): "0"}), name) == 0


def test_a_bad_topic_regex_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="HERALD_TOPICS"):
        load_settings({"HERALD_TOPICS": "orders("})


@pytest.mark.parametrize("bind", ["localhost", "localhost:", "localhost:http", ":"])
def test_a_bind_without_port_raises_config_error(bind: str) -> None:
    with pytest.raises(ConfigError, match="HERALD_BIND"):
        load_settings({"HERALD_BIND": bind})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_topic_list_alone_turns_the_default_pattern_off() -> None:
    settings = load_settings({"HERALD_TOPIC_LIST": "orders"})
    assert settings.topic_list == ("orders",)
    assert settings.topics == ""


def test_topic_list_with_a_pattern_keeps_the_pattern() -> None:
    settings = load_settings({"HERALD_TOPIC_LIST": "orders", "HERALD_TOPICS": r"app\..+"})
    assert settings.topics == r"app\..+"


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.ring_size = 5  # type: ignore[misc]


@pytest.mark.parametrize(("wait_ms", "timeout_s"), [("-1", "5"), ("5000", "5"), ("3000", "2")])
def test_a_fetch_wait_outside_the_request_timeout_raises_config_error(
    wait_ms: str, timeout_s: str
) -> None:
    environ = {"HERALD_CONSUMER_FETCH_MAX_WAIT_MS": wait_ms, "HERALD_PUBLISH_TIMEOUT_S": timeout_s}
    with pytest.raises(ConfigError, match="HERALD_CONSUMER_FETCH_MAX_WAIT_MS"):
        load_settings(environ)


def test_a_fetch_wait_below_the_request_timeout_is_taken() -> None:
    environ = {"HERALD_CONSUMER_FETCH_MAX_WAIT_MS": "0", "HERALD_PUBLISH_TIMEOUT_S": "0.5"}
    assert load_settings(environ).consumer_fetch_max_wait_ms == 0
    environ = {"HERALD_CONSUMER_FETCH_MAX_WAIT_MS": "4999", "HERALD_PUBLISH_TIMEOUT_S": "5"}
    assert load_settings(environ).consumer_fetch_max_wait_ms == 4999


@pytest.mark.parametrize(
    ("variable", "instead"),
    [
        ("HERALD_PRIVATE_TOPICS", "HERALD_PUBLIC_TOPICS"),
        ("HERALD_TRUST_FORWARDED_FOR", "HERALD_TRUSTED_PROXIES"),
        ("HERALD_FAN_OUT_INTERVAL_MS", "HERALD_FAN_OUT_PAUSE"),
    ],
)
def test_a_retired_setting_is_an_error_that_says_what_replaced_it(
    variable: str, instead: str
) -> None:
    with pytest.raises(ConfigError, match=f"{variable} is no longer a setting: use {instead}"):
        load_settings({variable: "x"})


@pytest.mark.parametrize("value", ["", "2", "10.0.0.0/8", "10.0.0.0/8, ::1/128"])
def test_trusted_proxies_are_a_hop_count_or_networks(value: str) -> None:
    assert load_settings({"HERALD_TRUSTED_PROXIES": value}).trusted_proxies == value


def test_trusted_proxies_that_are_neither_are_an_error() -> None:
    with pytest.raises(ConfigError, match="HERALD_TRUSTED_PROXIES"):
        load_settings({"HERALD_TRUSTED_PROXIES": "nginx"})


def test_nothing_is_public_by_default() -> None:
    assert Settings().public_topics == ""


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = load_settings(
        {"HERALD_JWT_SECRET": "s3cret-jwt-value", "HERALD_KAFKA_SASL_PASSWORD": "s3cret-kafka"}
    )
    assert "s3cret" not in repr(settings)


def test_http3_needs_the_tls_certificate() -> None:
    with pytest.raises(ConfigError, match="HERALD_QUIC_BIND needs HERALD_TLS_CERT"):
        load_settings({"HERALD_QUIC_BIND": "127.0.0.1:8443"})


def test_http3_needs_aioquic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"herald\[http3\]"):
        load_settings({"HERALD_QUIC_BIND": "127.0.0.1:8443", **_tls(tmp_path)})


@pytest.mark.parametrize("bind", ["8443", "localhost:", "localhost:https"])
def test_a_quic_bind_without_port_raises_config_error(bind: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="HERALD_QUIC_BIND must be host:port"):
        load_settings({"HERALD_QUIC_BIND": bind, **_tls(tmp_path)})


def test_http3_is_advertised_on_the_bind_port_unless_a_public_one_is_given(
    tmp_path: Path,
) -> None:
    assert load_settings({}).quic_port == 0  # no QUIC unless asked for
    quic = {"HERALD_QUIC_BIND": "0.0.0.0:8443", **_tls(tmp_path)}
    assert load_settings(quic).quic_port == 8443
    assert load_settings({**quic, "HERALD_QUIC_PUBLIC_PORT": "443"}).quic_port == 443


def _tls(directory: Path) -> dict[str, str]:
    for name in ("cert.pem", "key.pem"):
        (directory / name).write_text("-")
    return {
        "HERALD_TLS_CERT": str(directory / "cert.pem"),
        "HERALD_TLS_KEY": str(directory / "key.pem"),
    }
