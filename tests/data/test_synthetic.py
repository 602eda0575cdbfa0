"""The synthetic doodles are the default data: their files must match Kaggle's and Google's layouts."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from quickdraw.core.errors import SettingError
from quickdraw.data import synthetic
from quickdraw.data.conversion import convert
from quickdraw.data.convert_file import ConvertSettings
from quickdraw.data.formats.sketchrnn_writer import write_npz
from quickdraw.data.origin import GENERATED, MIXED, QUICKDRAW, MarkerError
from quickdraw.data.origin import MARKER as GENERATED_MARKER
from quickdraw.data.schema import MANIFEST, Manifest
from quickdraw.data.simplify import resample, simplify_drawing
from quickdraw.data.sources import StoreSource
from quickdraw.data.synthetic import (
    CLASSES,
    generate,
    raw_drawing,
    simplified_drawing,
    write_raw_ndjson,
)

SOME = ("circle", "house", "sun")
PER_CLASS = 40


def read_csv(path: Path) -> tuple[str, list[dict[str, str]]]:
    text = gzip.decompress(path.read_bytes()).decode()
    assert "\r" not in text  # Kaggle's files end lines with \n only
    return text.split("\n", 1)[0], list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    generate(out, per_class=PER_CLASS, classes=SOME, seed=0, progress=False, workers=1)
    return out


def test_default_classes() -> None:
    assert len(CLASSES) >= 10
    assert list(CLASSES) == sorted(set(CLASSES))
    assert all(c == c.lower() for c in CLASSES)


def test_same_seed_same_bytes_whatever_the_worker_count(csv_dir: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", PER_CLASS, SOME, seed=0, progress=False, workers=2)
    other = generate(tmp_path / "other", PER_CLASS, SOME, seed=1, progress=False, workers=1)
    for path, path_other in zip(again, other, strict=True):
        assert path.read_bytes() == (csv_dir / path.name).read_bytes()
        assert path.read_bytes() != path_other.read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_class_does_not_depend_on_the_others(csv_dir: Path, tmp_path: Path) -> None:
    (alone,) = generate(tmp_path, PER_CLASS, ["house"], seed=0, progress=False, workers=1)
    assert alone.read_bytes() == (csv_dir / "house.csv.gz").read_bytes()


def test_kaggle_csv_layout(csv_dir: Path) -> None:
    assert sorted(p.name for p in csv_dir.iterdir()) == [GENERATED_MARKER] + [
        f"{w}.csv.gz" for w in SOME
    ]
    keys, flags = [], []
    for word in SOME:
        header, rows = read_csv(csv_dir / f"{word}.csv.gz")
        assert header == "countrycode,drawing,key_id,recognized,timestamp,word"
        assert len(rows) == PER_CLASS
        for row in rows:
            assert row["word"] == word
            assert re.fullmatch(r"[A-Z]{2}", row["countrycode"])
            assert re.fullmatch(r"[1-9]\d{15}", row["key_id"])
            assert row["recognized"] in ("True", "False")
            assert re.fullmatch(r"2017-\d\d-\d\d \d\d:\d\d:\d\d\.\d{1,5}", row["timestamp"])
            assert row["drawing"].startswith("[[[") and ", " in row["drawing"]
            keys.append(int(row["key_id"]))
            flags.append(row["recognized"])
    assert len(set(keys)) == len(keys), "key_id must be unique across classes"
    assert 0.5 < flags.count("True") / len(flags) < 1.0  # mostly, not always, recognised


def test_drawings_are_in_the_simplified_frame(csv_dir: Path) -> None:
    for word in SOME:
        for row in read_csv(csv_dir / f"{word}.csv.gz")[1]:
            drawing = json.loads(row["drawing"])
            assert drawing
            for xs, ys in drawing:
                assert len(xs) == len(ys) >= 1
                assert all(isinstance(v, int) and 0 <= v <= 255 for v in xs + ys)
            pts = np.array([p for xs, ys in drawing for p in zip(xs, ys, strict=True)])
            # Aligned to the top-left and the longer side scaled to 255; Ramer-Douglas-Peucker
            # (epsilon 2) may drop an extreme point, as in Google's files.
            assert pts.min(axis=0).max() <= 2
            assert pts.max() >= 253


def test_raw_ndjson_layout_and_agreement_with_csv(csv_dir: Path, tmp_path: Path) -> None:
    path = write_raw_ndjson(tmp_path / "house.ndjson.gz", "house", PER_CLASS, seed=0)
    plain = write_raw_ndjson(tmp_path / "house.ndjson", "house", PER_CLASS, seed=0)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert lines == plain.read_text().splitlines()
    rows = read_csv(csv_dir / "house.csv.gz")[1]
    assert len(lines) == len(rows) == PER_CLASS
    for line, row in zip(lines, rows, strict=True):
        obj = json.loads(line)
        assert list(obj) == ["word", "countrycode", "timestamp", "recognized", "key_id", "drawing"]
        assert obj["timestamp"].endswith(" UTC") and isinstance(obj["recognized"], bool)
        assert obj["key_id"] == row["key_id"] and obj["word"] == "house"
        starts = []
        for stroke in obj["drawing"]:
            xs, ys, ts = stroke
            assert len(xs) == len(ys) == len(ts)
            assert all(isinstance(v, float) for v in xs + ys)
            assert all(isinstance(t, int) for t in ts) and np.all(np.diff(ts) > 0)
            starts.append(ts[0])
        assert starts[0] == 0 and np.all(np.diff(starts) > 0)
        # The CSV holds exactly these strokes after Google's simplification.
        simple = simplify_drawing([np.array(s[:2]).T for s in obj["drawing"]])
        assert [[s[:, 0].tolist(), s[:, 1].tolist()] for s in simple] == json.loads(row["drawing"])


def test_raw_and_simplified_drawing_api() -> None:
    rng = np.random.default_rng(0)
    raw = raw_drawing("star", rng)
    assert all(s.dtype == np.float64 and s.ndim == 2 and s.shape[1] == 3 for s in raw)
    assert all(np.all(np.diff(s[:, 2]) > 0) for s in raw)
    simple = simplified_drawing("star", rng)
    assert all(s.dtype == np.uint8 and s.shape[1] == 2 for s in simple)
    with pytest.raises(KeyError, match="choose from"):
        raw_drawing("unicorn", rng)


def features(drawing: list[np.ndarray]) -> np.ndarray:
    """Where the ink is (4x4), which way it runs (4 bins), how many strokes and points."""
    pts = np.concatenate([resample(s.astype(float), 4.0) for s in drawing])
    ink = np.histogram2d(pts[:, 0], pts[:, 1], bins=4, range=[[0, 256], [0, 256]])[0].ravel()
    seg = np.concatenate([np.diff(s.astype(float), axis=0) for s in drawing])
    angle = np.arctan2(seg[:, 1], seg[:, 0]) % np.pi
    runs = np.histogram(angle, bins=4, range=(0, np.pi), weights=np.hypot(*seg.T))[0]
    counts = [np.log1p(len(drawing)), np.log1p(sum(map(len, drawing)))]
    return np.r_[ink / ink.sum(), runs / max(runs.sum(), 1e-9), counts]


def test_classes_are_told_apart_by_a_nearest_centroid() -> None:
    """Classes that drifted into each other would leave a model nothing to learn."""
    rng = np.random.default_rng(0)
    x = np.array([[features(simplified_drawing(w, rng)) for _ in range(40)] for w in CLASSES])
    train, test = x[:, :20], x[:, 20:]
    mu, sd = train.reshape(-1, x.shape[-1]).mean(0), train.reshape(-1, x.shape[-1]).std(0) + 1e-9
    centroids = ((train - mu) / sd).mean(1)
    dist = ((((test - mu) / sd)[:, :, None] - centroids[None, None]) ** 2).sum(-1)
    accuracy = (dist.argmin(-1) == np.arange(len(CLASSES))[:, None]).mean()
    assert accuracy > max(0.35, 4 / len(CLASSES))  # chance is 1 / len(CLASSES)


def test_interrupted_generate_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = synthetic._chunk

    def failing(word: str, *args: object) -> bytes:
        if word == "sun":
            raise RuntimeError("interrupted")
        return real(word, *args)

    monkeypatch.setattr(synthetic, "_chunk", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate(tmp_path, 5, ["circle", "sun"], progress=False, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circle.csv.gz"]  # no marker: incomplete


def test_the_generated_folder_is_marked_and_stores_record_their_origin(
    csv_dir: Path, tmp_path: Path
) -> None:
    """A model trained on generated doodles must not be credited as Quick, Draw! data, nor Google's
    drawings lose their credit: the generator lists the files it made, the converter records the
    store's origin from them."""
    marker = json.loads((csv_dir / GENERATED_MARKER).read_text())
    assert marker == {"generator": "quickdraw.data.synthetic", "seed": 0, "per_class": PER_CLASS,
                      "classes": list(SOME), "files": [f"{w}.csv.gz" for w in SOME]}  # fmt: skip
    assert convert(csv_dir, tmp_path / "gen", progress=False).origin == GENERATED
    assert convert(csv_dir / "sun.csv.gz", tmp_path / "one", progress=False).origin == GENERATED
    archive = shutil.make_archive(str(tmp_path / "zipped"), "zip", csv_dir)  # the marker in the zip
    assert convert(archive, tmp_path / "z", progress=False).origin == GENERATED
    nested = tmp_path / "nested"  # the folder above a generated one
    shutil.copytree(csv_dir, nested / "gen")
    assert convert(nested, tmp_path / "n", progress=False).origin == GENERATED

    google = (
        tmp_path / "google" / "moon.csv.gz"
    )  # generated rows without the marker: taken for Google's
    google.parent.mkdir()
    shutil.copy(csv_dir / "sun.csv.gz", google)
    assert convert(google.parent, tmp_path / "qd", progress=False).origin == QUICKDRAW
    for inside in (nested / "gen", nested):  # Google's file in the generated folder, or beside it
        shutil.copy(google, inside / "moon.csv.gz")
        assert convert(nested, tmp_path / f"mixed-{inside.name}", progress=False).origin == MIXED
        (inside / "moon.csv.gz").unlink()

    old = json.loads((tmp_path / "qd" / MANIFEST).read_text())
    del old["origin"]  # a manifest written before the field: read as not recorded ...
    (tmp_path / "qd" / MANIFEST).write_text(json.dumps(old))
    assert Manifest.load(tmp_path / "qd").origin == ""
    assert (
        convert(google.parent, tmp_path / "qd", progress=False).origin == QUICKDRAW
    )  # ... recorded now


@pytest.mark.parametrize(
    "text",
    ["", "{not json", "[1]", '{"generator": "quickdraw.data.synthetic", "files": "sun.csv.gz"}',
     '{"generator": "quickdraw.data.synthetic"}', '{"generator": "someone-else", "files": ["sun.csv.gz"]}'],
)  # fmt: skip
def test_a_marker_that_is_not_the_generators_is_refused_by_name_before_converting(
    csv_dir: Path, tmp_path: Path, text: str
) -> None:
    folder = tmp_path / "data"
    shutil.copytree(csv_dir, folder)
    (folder / GENERATED_MARKER).write_text(text)
    match = rf"{GENERATED_MARKER} is not quickdraw.data.synthetic's marker.*Delete it"
    with pytest.raises(MarkerError, match=match):
        convert(folder, tmp_path / "store", progress=False)
    assert not (tmp_path / "store" / "train").exists(), "refused before converting anything"
    generate(folder, 5, list(SOME), progress=False, workers=1, replace=True)  # the fix it names
    assert convert(folder, tmp_path / "store", progress=False).origin == GENERATED


def test_generating_into_a_folder_of_other_files_lists_only_its_own(
    csv_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(csv_dir / "sun.csv.gz", folder / "moon.csv.gz")  # not the generator's here
    generate(folder, 5, ["sun"], progress=False, workers=1)
    assert "holds 1 data files the generator did not make (moon.csv.gz)" in caplog.text
    generate(folder, 5, ["circle"], progress=False, workers=1)  # a second run adds to the list
    assert json.loads((folder / GENERATED_MARKER).read_text())["files"] == [
        "circle.csv.gz",
        "sun.csv.gz",
    ]
    assert convert(folder, tmp_path / "store", progress=False).origin == MIXED
    before = (folder / "moon.csv.gz").read_bytes()
    with pytest.raises(
        FileExistsError, match=r"holds moon.csv.gz, not made by the generator.*replace=True"
    ):
        generate(folder, 5, ["moon"], progress=False, workers=1)  # would write over someone's file
    assert (folder / "moon.csv.gz").read_bytes() == before
    generate(folder, 5, ["moon"], progress=False, workers=1, replace=True)
    assert convert(folder, tmp_path / "again", progress=False).origin == GENERATED


def test_links_and_the_sketch_rnn_round_trip_keep_the_origin(csv_dir: Path, tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    for name in ("sun.csv.gz", "house.csv.gz"):
        (links / name).symlink_to(csv_dir / name)
    assert convert(links, tmp_path / "linked", progress=False).origin == GENERATED
    write_npz(tmp_path / "linked", tmp_path / "npz", progress=False)
    assert convert(tmp_path / "npz", tmp_path / "back", progress=False).origin == GENERATED


def test_an_unknown_class_is_a_setting_error_naming_it(tmp_path: Path) -> None:
    """A project error (one line from any command), naming the class and the ones there are."""
    with pytest.raises(
        SettingError, match=r"no synthetic class \['cat'\]; choose from arrow, circle"
    ):
        generate(tmp_path, 1, ["cat", "circle"], progress=False, workers=1)
    assert not any(tmp_path.iterdir())


def test_a_store_holds_one_sources_files(csv_dir: Path, tmp_path: Path) -> None:
    """Converting another source into a store would drop the first one's rows from its manifest."""
    same = ConvertSettings(classes=list(SOME))  # the same settings, so that only the source differs
    convert(csv_dir, tmp_path / "store", same, progress=False)
    other = tmp_path / "other" / "moon.csv.gz"
    other.parent.mkdir()
    shutil.copy(csv_dir / "sun.csv.gz", other)
    with pytest.raises(
        ValueError,
        match=r"holds 3 converted files that the source given does not have.*overwrite=true",
    ):
        convert(other.parent, tmp_path / "store", same, progress=False)
    assert sum(Manifest.load(tmp_path / "store").rows.values()) == PER_CLASS * len(
        SOME
    )  # nothing lost
    assert (
        convert(other.parent, tmp_path / "store", progress=False, overwrite=True).origin
        == QUICKDRAW
    )


def test_an_interrupted_generated_set_is_made_again_before_converting(tmp_path: Path) -> None:
    """The default data's folder without its marker (generation killed midway) is not taken for complete."""
    where = StoreSource(cache_dir=tmp_path, synthetic_per_class=4)
    partial = tmp_path / "synthetic" / "csv-n4-s0"
    generate(partial, 4, ["sun"], progress=False, workers=1)
    (partial / GENERATED_MARKER).unlink()  # as if killed after the first class
    store = where.ensure()
    manifest = Manifest.load(store)
    assert manifest.classes == sorted(CLASSES) and manifest.origin == GENERATED
