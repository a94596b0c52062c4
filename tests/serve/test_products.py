"""One champion per product (part type): the registry keeps a champion per (kind, part type), inspections are routed
by the part type of their file (or the request's ``part_type``) with the default champion for the rest, and each
product's champion is judged for drift against its own reference on its own inspections."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.cli import run_cli
from helpers.runs import small_maps, train_wafer_run
from helpers.service import auth
from helpers.sinf_writer import write_sinf
from sqlalchemy import text

from adrcs.serve.products import part_key, product_models, version_suffix
from adrcs.serve.store import Store, upgrade

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def product_run(tmp_path_factory) -> Path:
    """A tiny wafer run of its own (seed 2) for product DEV-A."""
    return train_wafer_run(tmp_path_factory.mktemp("product_run"), 2)


def test_registry_keeps_one_champion_per_product(store: Store) -> None:
    for version, part in (("wafer-d1", None), ("wafer-d2", None), ("wafer-a1@A", "A"), ("wafer-a2@A", "A"),
                          ("wafer-b1@B", "B")):
        store.register_model(version, kind="wafer", path=version, metrics={}, part_type=part)
    for v in ("wafer-d1", "wafer-a1@A", "wafer-b1@B"):
        store.promote(v, actor="t")
    assert store.champion("wafer").version == "wafer-d1"
    assert store.champion_parts("wafer") == {"A": "wafer-a1@A", "B": "wafer-b1@B"}
    store.promote("wafer-a2@A", actor="t")  # retires A's champion only
    assert store.get_model("wafer-a1@A").status == "retired"
    assert store.champion("wafer").version == "wafer-d1" and store.champion("wafer", "B").version == "wafer-b1@B"
    assert store.rollback(actor="t", kind="wafer", part_type="A").version == "wafer-a1@A"
    with pytest.raises(ValueError, match="no previous wafer champion"):
        store.rollback(actor="t", kind="wafer")  # the default's history is its own: nothing before d1
    with pytest.raises(ValueError, match="part type 'C'"):
        store.rollback(actor="t", kind="wafer", part_type="C")
    assert store.champion("wafer", "C") is None


def test_existing_store_upgrades_to_products(db_url: str) -> None:
    """A store made before products (0004) with a model and an inspection upgrades: both are 'default'."""
    from sqlalchemy import create_engine

    from adrcs.serve.store import normalize_url

    engine = create_engine(normalize_url(db_url))
    upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO model_versions (version, kind, path, created_at, metrics, status) "
                          "VALUES ('wafer-old', 'wafer', '/old', CURRENT_TIMESTAMP, '{}', 'champion')"))
    engine.dispose()
    with Store(db_url) as store:
        assert store.champion("wafer").version == "wafer-old" and store.champion("wafer").part_type is None
        assert store.champion_parts("wafer") == {}


def test_part_types_and_flags(capsys) -> None:
    assert part_key(" 'DEV-A' ") == "DEV-A" and part_key("") is None and part_key(None) is None
    assert version_suffix("DEV-A") == "@DEV-A" and version_suffix("DEV A/1").startswith("@DEV_A_1-")
    assert version_suffix("DEV A/1") != version_suffix("DEV_A_1")
    assert product_models(["DEV-A=runs/a"]) == [("DEV-A", "runs/a")]
    code, _, err = run_cli(["serve", "--product-model", "runs/a"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--product-model 'runs/a' must be PART=RUN" in err


def test_inspections_routed_by_part_type_with_default_and_own_drift(make_wafer_service, product_run,
                                                                   tmp_path) -> None:
    client, tokens, store = make_wafer_service(product_models=[("DEV-A", str(product_run))])
    h = auth(tokens["admin"])
    models = client.get("/v1/models", headers=h).json()
    default, own = models["champions"]["wafer"], models["products"]["wafer"]["DEV-A"]
    assert own.endswith("@DEV-A") and own != default

    def versions(body: dict) -> list[tuple[str, str | None]]:
        r = client.post("/v1/inspect/wafer-maps", json=body, headers=h)
        assert r.status_code == 200, r.text
        return [(x["model_version"], x["part_type"]) for x in r.json()["results"]]

    assert versions({"maps": small_maps(2), "part_type": "DEV-A"}) == [(own, "DEV-A")] * 2
    assert versions({"maps": small_maps(1), "part_type": "DEV-Z"}) == [(default, "DEV-Z")]  # no champion: default
    assert versions({"maps": small_maps(1)}) == [(default, None)]
    # fab files carry the part type per wafer (SINF DEVICE): routed by it, the form field only fills a gap
    maps = [np.array(m, np.uint8) for m in small_maps(2, seed=7)]
    for device, expect in (("DEV-A", own), ("DEV-B", default)):
        write_sinf(tmp_path / f"{device}.sinf", maps, device=device)
        with open(tmp_path / f"{device}.sinf", "rb") as f:
            r = client.post("/v1/inspect/wafer-maps", files={"file": (f"{device}.sinf", f.read())},
                            data={"part_type": "DEV-A"}, headers=h)
        assert r.status_code == 200, r.text
        assert [(x["model_version"], x["part_type"]) for x in r.json()["results"]] == [(expect, device)] * 2
    assert {i.part_type for i in store.list_inspections(limit=100)} == {"DEV-A", "DEV-B", "DEV-Z", None}
    # each champion's drift: its own reference, on the maps it answered (DEV-A: 4; the default: the other 4)
    stats = client.get("/v1/stats", headers=h).json()
    mine, dflt = stats["drift_products"]["DEV-A"], stats["drift"]
    assert mine["model_version"] == own and mine["part_type"] == "DEV-A" and mine["window"] == 4
    assert dflt["model_version"] == default and dflt["window"] == 4
    assert client.app.state.host.current("wafer", "DEV-A").reference is not None
    r = client.post("/v1/models/rollback", params={"part_type": "DEV-A"}, headers=h)
    assert r.status_code == 409 and "no previous wafer champion" in r.json()["detail"]
    r = client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(1), "part_type": "x" * 300}, headers=h)
    assert r.status_code == 422 and "part_type" in r.json()["detail"]


def test_a_new_product_champion_is_picked_up_by_a_running_service(make_wafer_service, product_run) -> None:
    client, tokens, store = make_wafer_service()
    h = auth(tokens["admin"])
    default = client.get("/v1/models", headers=h).json()["champions"]["wafer"]
    client.app.state.host.refresh_s = 0.2
    client.app.state.host.register(product_run, part_type="DEV-A")  # as another replica would, via the store
    import time

    time.sleep(0.3)
    r = client.post("/v1/inspect/wafer-maps", json={"maps": small_maps(1), "part_type": "DEV-A"}, headers=h)
    assert r.json()["results"][0]["model_version"] not in (default, None)
    assert r.json()["results"][0]["model_version"].endswith("@DEV-A")
