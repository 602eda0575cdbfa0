"""`balance=true` balances: top-1 counts equal the target counts for any probability matrix.

The family: flat and peaked Dirichlet rows, a weak model that prefers a few classes, saturated
rows (exact zeros), identical rows and coarse ties, unnormalised rows near float32's largest
value, N not divisible by C, N < C, C = 1, N = 0,
uniform, non-uniform and zero-share priors; plus the optimum against scipy's assignment solver,
the ranking of the other classes, and a 20 000 x 340 matrix for the size Kaggle's test set needs.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict
from scipy.optimize import linear_sum_assignment

from quickdraw import cli
from quickdraw.evaluation import score as evaluation
from quickdraw.metrics.balancing import assign, balance, load_prior, target_counts
from tests.helpers.checkpoints import save_untrained
from tests.helpers.commands import run_module
from tests.helpers.configs import RESNET, compose_config


def matrix(kind: str, n: int, c: int, seed: int = 0) -> np.ndarray:
    """(n, c) float32 probabilities of one kind of model."""
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return rng.dirichlet(np.ones(c), n).astype(np.float32)
    if kind == "peaked":
        return rng.dirichlet(np.full(c, 0.05), n).astype(np.float32)
    if kind in ("weak", "saturated"):  # most rows prefer a few classes, confidently
        logits = rng.normal(0, 1, (n, c)) + 3 * rng.normal(0, 1, c)
        logits[np.arange(n), np.arange(n) % c] += 2.5
        logits *= 3 if kind == "weak" else 30  # 30: most probabilities underflow to exactly 0
        p = np.exp(logits - logits.max(axis=1, keepdims=True)).astype(np.float32)
        return p / p.sum(axis=1, keepdims=True)
    if kind == "identical":  # every row the same: ties between rows everywhere
        return np.tile(rng.dirichlet(np.ones(c)).astype(np.float32), (n, 1))
    if kind == "coarse":  # two decimals: ties within rows and between rows
        return np.round(rng.dirichlet(np.ones(c), n), 2).astype(np.float32)
    if kind == "uniform":
        return np.full((n, c), 1 / c, np.float32)
    if kind == "unnormalised":  # scores near float32's largest: Sinkhorn overflows
        return rng.uniform(0, 3e38, (n, c)).astype(np.float32)
    if kind == "one class everywhere":  # a collapsed model: probability 1 for one class, 0 else
        p = np.zeros((n, c), np.float32)
        p[:, c // 2] = 1
        return p
    if kind == "float16":  # scores saved as float16: small ones 0 or subnormal, many ties
        return rng.dirichlet(np.full(c, 0.05), n).astype(np.float16).astype(np.float32)
    raise ValueError(kind)


def priors(kind: str, c: int) -> np.ndarray | None:
    rng = np.random.default_rng(1)
    if kind == "uniform":
        return None
    if kind == "random":
        return rng.uniform(0.1, 3, c)
    share = rng.uniform(0.1, 3, c)  # "zeros": a third of the classes expected never
    share[rng.permutation(c)[: c // 3]] = 0
    if not share.any():
        share[0] = 1
    return share


def top1_counts(scores: np.ndarray) -> np.ndarray:
    return np.bincount(scores.argmax(axis=1), minlength=scores.shape[1])


KINDS = ["flat", "peaked", "weak", "saturated", "identical", "coarse", "uniform", "unnormalised"]
KINDS += ["one class everywhere", "float16"]
SHAPES = [(1720, 344), (101, 7), (5, 30), (9, 1), (0, 5), (64, 64), (1, 344), (345, 344)]


@pytest.mark.parametrize("prior_kind", ["uniform", "random", "zeros"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", KINDS)
def test_top1_counts_equal_the_targets_for_every_kind_of_matrix(kind, shape, prior_kind):
    n, c = shape
    probs, prior = matrix(kind, n, c), priors(prior_kind, c)
    scores = balance(probs, prior)
    assert scores.shape == (n, c) and scores.dtype == np.float32
    target = target_counts(n, np.ones(c) if prior is None else prior)
    assert top1_counts(scores).tolist() == target.tolist()
    assert np.isfinite(scores).all() and np.allclose(scores.sum(axis=1), 1, atol=1e-4)
    if prior is not None:
        assert (scores[:, prior == 0] == 0).all()  # a class of share 0 is never ranked
    # the top class is strict: any tie-breaking rule (torch.topk, np.argsort) agrees
    top2 = np.sort(scores, axis=1)[:, -2:] if c > 1 else np.zeros((n, 2))
    assert (top2[:, 1] > top2[:, 0]).all() or c == 1


@pytest.mark.parametrize("n", [0, 1, 7, 340, 1719, 112_199])
@pytest.mark.parametrize("prior_kind", ["uniform", "random", "zeros"])
def test_target_counts_are_the_shares_rounded_and_add_up_to_n(n, prior_kind):
    share = priors(prior_kind, 340)
    share = np.ones(340) if share is None else share
    counts = target_counts(n, share)
    exact = n * share / share.sum()
    assert counts.sum() == n
    assert ((counts == np.floor(exact)) | (counts == np.ceil(exact))).all()


@pytest.mark.parametrize("kind", ["flat", "peaked", "weak", "coarse"])
@pytest.mark.parametrize("prior_kind", ["uniform", "random"])
def test_the_assignment_is_the_optimum_of_scipys_assignment_solver(kind, prior_kind):
    n, c = 120, 9
    probs, prior = matrix(kind, n, c, seed=3), priors(prior_kind, c)
    target = target_counts(n, np.ones(c) if prior is None else prior)
    logp = np.log(np.maximum(probs, np.finfo(np.float32).tiny))
    rows, _ = assign(logp, target)
    slots = np.repeat(np.arange(c), target)  # class c as target[c] identical slots
    r, k = linear_sum_assignment(-logp[:, slots].astype(np.float64))
    best = logp[r, slots[k]].astype(np.float64).sum()
    assert logp[np.arange(n), rows].astype(np.float64).sum() == pytest.approx(best, abs=1e-6 * n)


@pytest.mark.parametrize("kind", ["flat", "weak"])
def test_each_rows_class_is_its_best_under_the_prices_and_the_rest_keep_their_order(kind):
    n, c = 500, 12
    probs = matrix(kind, n, c, seed=5)
    logp = np.log(np.maximum(probs, np.finfo(np.float32).tiny))
    rows, price = assign(logp, target_counts(n, np.ones(c)))
    reduced = logp.astype(np.float64) - price
    assert (reduced[np.arange(n), rows] >= reduced.max(axis=1) - 1e-9).all()
    scores = balance(probs)
    assert (scores.argmax(axis=1) == rows).all()
    # Without the assigned class, each row ranks the others as p * exp(-price) does (MAP@3's 2nd/3rd).
    mask = np.ones((n, c), bool)
    mask[np.arange(n), rows] = False
    by_score = np.argsort(-np.where(mask, scores, -1), axis=1, kind="stable")[:, : c - 1]
    by_price = np.argsort(-np.where(mask, reduced, -np.inf), axis=1, kind="stable")[:, : c - 1]
    ranked = np.take_along_axis(reduced, by_score, 1)  # float32 scores: near-ties may swap
    assert np.allclose(ranked, np.take_along_axis(reduced, by_price, 1), atol=1e-5)


@pytest.mark.parametrize("shape", [(1720, 344), (101, 7)], ids=str)
def test_an_already_balanced_argmax_keeps_every_top1(shape):
    n, c = shape
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(c), n).astype(np.float32)
    wanted = np.repeat(np.arange(c), target_counts(n, np.ones(c)))[rng.permutation(n)]
    probs[np.arange(n), wanted] += 1  # each row's argmax is its wanted class
    assert balance(probs).argmax(axis=1).tolist() == wanted.tolist()


def test_a_kaggle_sized_weak_model_balances_exactly():
    """20 000 x 340 rows of a model that sends most rows to a few classes (the large-size path)."""
    probs = matrix("weak", 20_000, 340, seed=7)
    assert top1_counts(probs).max() > 1000  # the fault's shape: a few classes take most rows
    counts = top1_counts(balance(probs))
    assert counts.tolist() == target_counts(20_000, np.ones(340)).tolist()


@pytest.mark.parametrize(
    "probs, prior, match",
    [
        (np.array([[0.5, np.nan]]), None, "finite, non-negative"),
        (np.array([[0.5, -0.1]]), None, "finite, non-negative"),
        (np.ones(3), None, r"\(N, C\)"),
        (np.ones((2, 3)), np.array([1, -1, 1]), "non-negative share"),
        (np.ones((2, 3)), np.zeros(3), "adding up to more than 0"),
        (np.ones((2, 3)), np.ones(4), "one finite, non-negative share per class"),
    ],
)
def test_bad_input_is_refused_with_what_is_wrong(probs, prior, match):
    with pytest.raises(ValueError, match=match):
        balance(probs, prior)


CLASSES = ["cat", "The Eiffel Tower", "ice cream", "dog"]
# a prior file as people write them -> the shares it gives
GOOD_PRIORS = {
    "spaces around names and counts": (
        "word , count\n cat , 3 \n The Eiffel Tower ,1\n",
        [3, 1, 0, 0],
    ),
    "byte-order mark, CRLF": ("\ufeffword,count\r\ncat,3\r\ndog,1\r\n", [3, 0, 0, 1]),
    "Kaggle spelling": ("word,count\nThe_Eiffel_Tower,2\nice_cream,2\n", [0, 2, 2, 0]),
    "blank lines, 1e3": ("word,count\n\ncat,1e3\n\ndog,1000\n", [1, 0, 0, 1]),
    "a class of share 0": ("word,count\ncat,0\ndog,5\n", [0, 0, 0, 1]),
}
BAD_PRIORS = {
    "unknown class": ("word,count\ncat,1\nunicorn,2\n", "line 3: 'unicorn' names no class"),
    "all shares 0": ("word,count\ncat,0\ndog,0\n", "the counts add up to 0"),
    "no rows": ("word,count\n", "the counts add up to 0"),
    "empty file": ("", "expected columns word,count"),
    "semicolons": ("word;count\ncat;1\n", "expected columns word,count"),
    "negative count": (
        "word,count\ncat,-1\ndog,3\n",
        "line 2: the count '-1' is not a number >= 0",
    ),
    "NaN count": ("word,count\ncat,nan\ndog,3\n", "line 2: the count 'nan' is not a number"),
    "infinite count": ("word,count\ncat,inf\ndog,3\n", "line 2: the count 'inf' is not a number"),
    "empty count": ("word,count\ncat,\ndog,3\n", "line 2: the count '' is not a number"),
    "words as count": ("word,count\ncat,many\n", "line 2: the count 'many' is not a number"),
    "short row": ("word,count\ncat\n", "line 2: the count None is not a number"),
    "a class twice": (
        "word,count\ncat,1\nCat,2\n",
        "line 3: 'cat' is listed again .first on line 2",
    ),
}


@pytest.mark.parametrize("name", GOOD_PRIORS)
def test_prior_files_as_people_write_them_give_their_shares(name, tmp_path):
    text, counts = GOOD_PRIORS[name]
    (tmp_path / "prior.csv").write_text(text, encoding="utf-8", newline="")
    shares = load_prior(tmp_path / "prior.csv", CLASSES)
    assert shares.tolist() == pytest.approx((np.array(counts) / sum(counts)).tolist())


@pytest.mark.parametrize("name", BAD_PRIORS)
def test_a_bad_prior_file_is_refused_naming_the_line(name, tmp_path):
    """A NaN, negative or empty count gave NaN shares or a bare float() error; a class listed
    twice had its counts added silently."""
    text, match = BAD_PRIORS[name]
    (tmp_path / "prior.csv").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=match) as error:
        load_prior(tmp_path / "prior.csv", CLASSES)
    assert str(tmp_path / "prior.csv") in str(error.value)


# -- the commands, end to end on the real sample ----------------------------------------------------
@pytest.fixture(scope="module")
def sample_words(sample_dir) -> list[str]:
    with open(sample_dir / "test_labels.csv", encoding="utf-8") as f:
        return sorted({row["word"] for row in csv.DictReader(f)})


@pytest.fixture(scope="module")
def weak_344_class_model(sample_words, tmp_path_factory) -> Path:
    """An untrained network over the sample's 344 classes: it sends most drawings to a few."""
    assert len(sample_words) == 344
    path = tmp_path_factory.mktemp("weak") / "model.ckpt"
    return save_untrained(path, RESNET, classes=sample_words)


def uneven_prior(words: list[str], folder: Path) -> tuple[Path, np.ndarray]:
    """A prior file (Kaggle spelling, some classes 0) and its shares in `words` order."""
    counts = np.array([(3, 1, 0)[i % 3] for i in range(len(words))], float)
    rows = "".join(f"{w.replace(' ', '_')},{c:g}\n" for w, c in zip(words, counts, strict=True))
    (folder / "prior.csv").write_text("word,count\n" + rows, encoding="utf-8")
    return folder / "prior.csv", counts


@pytest.mark.parametrize("prior", ["uniform", "prior file"])
def test_predict_balance_gives_the_target_counts_on_the_sample(sample_dir, sample_words, weak_344_class_model, prior, tmp_path):  # fmt: skip
    """`predict balance=true` on test_simplified.csv (5 drawings of each of 344 classes) gave top-1
    counts over 206 classes, from 1 to 39 a class."""
    args = [f"ckpt_path={weak_344_class_model}", f"input={sample_dir / 'test_simplified.csv'}"]
    args += [f"output={tmp_path / 'sub.csv'}", "balance=true"]
    shares = np.ones(len(sample_words))
    if prior == "prior file":
        path, shares = uneven_prior(sample_words, tmp_path)
        args.append(f"prior={path}")
    done = run_module("quickdraw.predict", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "sub.csv", encoding="utf-8") as f:
        top1 = Counter(row["word"].split()[0] for row in csv.DictReader(f))
    expected = target_counts(1720, shares)
    got = [top1.get(w.replace(" ", "_"), 0) for w in sample_words]
    assert got == expected.tolist()


def test_evaluate_balance_scores_the_target_counts_on_the_sample(sample_dir, weak_344_class_model, tmp_path, monkeypatch):  # fmt: skip
    """The scores `evaluate balance=true` ranks (all 1 720 rows balanced together, not per batch)."""
    ranked = []

    def spy(probs, prior=None):
        assert top1_counts(probs).max() > 20  # the weak model's own top-1s: a few classes take most
        ranked.append(balance(probs, prior))
        return ranked[-1]

    monkeypatch.setattr(evaluation, "balance_scores", spy)
    overrides = [f"ckpt_path={weak_344_class_model}", f"input={sample_dir / 'test_simplified.csv'}"]
    overrides += [f"labels={sample_dir / 'test_labels.csv'}", "balance=true"]
    cfg = compose_config("evaluate", overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    cli.evaluate.__wrapped__(cfg)
    assert len(ranked) == 1 and ranked[0].shape == (1720, 344)
    assert top1_counts(ranked[0]).tolist() == [5] * 344
