"""A registry started on its database without the state folder that holds its keys (a move to a new server,
a restore that forgot the folder) refuses to start. It used to make new keys: every card issued since would
be signed by a key no gate trusts, and every stored template sealed to a key it no longer had, so each gate's
next sync received no template and deleted all of its own."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.security.sealing import seal
from registry.service import RegistryState
from registry.storage import SQLiteStorage


def test_a_registry_without_the_keys_its_database_was_made_with_refuses_to_start(tmp_path):
    storage = SQLiteStorage(tmp_path / "registry.sqlite")
    state = RegistryState.open(storage, tmp_path / "state")
    vector = np.ones(128, "<f4") / np.sqrt(128)
    state.storage.put_template("ab" * 16, seal(state.template_public_key, vector.tobytes(), ("ab" * 16).encode()),
                               "sface-2021dec-fp32", hashlib.sha256(vector.tobytes()).digest(), "ward-7")
    with pytest.raises(ConfigError) as e:
        RegistryState.open(storage, tmp_path / "new-server-state")
    assert "issuer_key.pem" in e.value.message and "template_key.pem" in e.value.message
    assert not (tmp_path / "new-server-state" / "issuer_key.pem").exists()  # no new key was made
    assert RegistryState.open(storage, tmp_path / "state").template_public_key == state.template_public_key
    storage.close()


def test_a_new_registry_makes_its_keys(tmp_path):
    storage = SQLiteStorage(tmp_path / "registry.sqlite")
    RegistryState.open(storage, tmp_path / "state")
    assert (tmp_path / "state" / "issuer_key.pem").exists() and (tmp_path / "state" / "template_key.pem").exists()
    storage.close()
