"""Changing `[telemetry] gateways`: each device's last sequence number, kept by its gateway under the
old setting (in its state, or in batches its journal holds unfiled), follows the device to its gateway
under the new one, so a replayed message is still refused; never lowered, safe to run at every start."""

from __future__ import annotations

import random

import pytest

from cityledger.offchain.telemetry import VaultKey, verify_message
from cityledger.offchain.telemetry.broker import device_shard, device_topic
from cityledger.offchain.telemetry.gateway import Gateway, GatewayState
from cityledger.offchain.telemetry.journal import Journal
from cityledger.offchain.telemetry.packets import Delivery
from cityledger.offchain.telemetry.reshard import carry_last_seq, layout_folder
from cityledger.offchain.vaults import VaultHost

from telemetry_helpers import Fleet, vehicle_samples

T0 = 1_700_000_000


@pytest.fixture
def fleet(tmp_path):
    (tmp_path / "devices").mkdir()
    return Fleet(VaultKey.generate(), tmp_path / "devices")


def _sealed(device, count: int) -> list[bytes]:
    return [device.seal(T0 + 10 * seq, vehicle_samples(random.Random(seq), T0 + 10 * seq)) for seq in range(count)]


def _state(telemetry, shard: int, shards: int) -> GatewayState:
    folder = layout_folder(telemetry, shard, shards)
    folder.mkdir(parents=True, exist_ok=True)
    return GatewayState(folder / "state.sqlite")


def test_last_numbers_follow_devices_from_two_gateways_to_one_and_replays_stay_refused(fleet, tmp_path):
    telemetry = tmp_path / "telemetry"
    filed, journalled = fleet.add(), fleet.add("ds-car-2")
    filed_msgs, journalled_msgs = _sealed(filed, 5), _sealed(journalled, 3)
    # Under gateways = 2: one device's records filed in its gateway's state, the other's journalled only.
    did_filed, did_journalled = filed.config.device_did, journalled.config.device_did
    state = _state(telemetry, device_shard(did_filed, 2), 2)
    state.commit(T0 // 60, [verify_message(m, fleet.lookup, None) for m in filed_msgs])
    state.close()
    _state(telemetry, device_shard(did_journalled, 2), 2).close()
    log = Journal(layout_folder(telemetry, device_shard(did_journalled, 2), 2) / "journal", applied=0)
    log.append(T0 // 60, [verify_message(m, fleet.lookup, None) for m in journalled_msgs])
    log.close()

    carried = carry_last_seq(telemetry, 1)
    assert carried.devices == 2
    assert set(carried.unfinished) == set(carried.folders)  # both hold records their layout has to finish
    state = GatewayState(layout_folder(telemetry, 0, 1) / "state.sqlite")
    assert (state.last_seq(did_filed), state.last_seq(did_journalled)) == (4, 2)
    state.close()
    assert carry_last_seq(telemetry, 1).devices == 0  # at the next start: nothing higher to carry

    # The one gateway now refuses both devices' old messages as replays and takes their next ones.
    gateway = Gateway(layout_folder(telemetry, 0, 1), VaultHost(tmp_path / "vaults"), fleet.lookup,
                      lambda *a: None, "127.0.0.1", 1, "unused", interval_s=60, clock=lambda: float(T0 + 600),
                      verify_workers=0)
    try:
        replays = [Delivery(device_topic(did_filed), filed_msgs[4], 1, 1, 0),
                   Delivery(device_topic(did_journalled), journalled_msgs[0], 2, 1, 0)]
        gateway.process_batch(replays)
        assert gateway.stored == 0 and gateway.refused == {"replay": 2}
        fresh = _sealed(filed, 1)[0]  # the device's counter goes on at 5
        gateway.process_batch([Delivery(device_topic(did_filed), fresh, 3, 1, 0)])
        assert gateway.stored == 1 and gateway.state.last_seq(did_filed) == 5
    finally:
        gateway.close()
        gateway.vaults.close()


def test_one_gateway_to_two_and_a_higher_number_is_never_lowered(fleet, tmp_path):
    telemetry = tmp_path / "telemetry"
    devices = [fleet.add(f"ds-car-{i}") for i in range(6)]
    dids = [device.config.device_did for device in devices]
    single = _state(telemetry, 0, 1)
    assert single.raise_last_seq([(did, 7) for did in dids]) == 6
    single.close()
    ahead = _state(telemetry, device_shard(dids[0], 2), 2)  # this device already went further under 2
    ahead.raise_last_seq([(dids[0], 40)])
    ahead.close()

    carried = carry_last_seq(telemetry, 2)
    assert carried.folders == ("gateway",) and carried.unfinished == ()
    assert carried.devices == 5  # every device but the one ahead
    for did in dids:
        state = GatewayState(layout_folder(telemetry, device_shard(did, 2), 2) / "state.sqlite")
        assert state.last_seq(did) == (40 if did == dids[0] else 7)
        other = GatewayState(layout_folder(telemetry, 1 - device_shard(did, 2), 2) / "state.sqlite")
        assert other.last_seq(did) is None  # each device in its own shard only
        state.close()
        other.close()


def test_nothing_to_carry_on_a_new_home_or_with_the_same_setting(tmp_path):
    telemetry = tmp_path / "telemetry"
    assert carry_last_seq(telemetry, 2).devices == 0 and not telemetry.exists()
    _state(telemetry, 0, 1).close()
    (telemetry / "gateway-x-of-2").mkdir()  # not a gateway folder's name: left alone
    assert carry_last_seq(telemetry, 1).folders == ()
