"""The real services the other tests stand on start, answer and come back after a restart."""

import httpx
import paho.mqtt.client as mqtt

from firewatch.contract.settings import Settings
from firewatch.services import InfluxD, Mosquitto


def test_broker_delivers_a_retained_message_after_restart(own_services) -> None:
    m: Mosquitto = own_services.mosquitto()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", m.port)
    pub.loop_start()
    pub.publish("fire/v1/x/y/status", b'{"online":true}', qos=1, retain=True).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    m.restart()

    got: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, msg: got.append(msg.payload)
    sub.connect("127.0.0.1", m.port)
    sub.subscribe("fire/v1/#", qos=1)
    from tests.conftest import wait_for

    sub.loop_start()
    wait_for(lambda: got)
    sub.loop_stop()
    assert got == [b'{"online":true}']


def test_influxdb_keeps_points_across_a_kill(own_services) -> None:
    i: InfluxD = own_services.influxd()
    httpx.post(f"{i.url}/query", data={"q": "CREATE DATABASE d"}).raise_for_status()
    httpx.post(f"{i.url}/write", params={"db": "d", "precision": "ms"}, content=b"m v=1 1763800000000").raise_for_status()
    i.kill()
    i.start()
    r = httpx.get(f"{i.url}/query", params={"db": "d", "q": "SELECT count(v) FROM m"}).json()
    assert r["results"][0]["series"][0]["values"][0][1] == 1


def test_settings_fixture_gives_each_test_its_own_database(settings: Settings, influxd: InfluxD) -> None:
    r = httpx.get(f"{influxd.url}/query", params={"q": "SHOW DATABASES"}).json()
    names = [v[0] for v in r["results"][0]["series"][0]["values"]]
    assert settings.influx.database in names


def test_the_retained_sweep_empties_what_a_test_left_on_the_shared_broker(mosquitto: Mosquitto) -> None:
    from tests.conftest import clear_retained

    topics = ["fire/v1/510104/FP-510104-0002/status", "fire/v1/_alerts/510104/FP-510104-0002"]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    for topic in topics:
        pub.publish(topic, b'{"online":false}', qos=1, retain=True).wait_for_publish(5)
    pub.loop_stop()
    pub.disconnect()
    assert sorted(clear_retained(mosquitto.port)) == sorted(topics)
    assert clear_retained(mosquitto.port) == []

