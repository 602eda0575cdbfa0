"""MAP@3 and the training losses: the numbers the leaderboard reports and training optimises."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.retrieval import RetrievalMRR

from quickdraw.metrics.classification import (
    MeanAveragePrecisionAtK,
    average_precision_at_k,
    worst_fraction_mean,
)
from quickdraw.models.losses import ClassWeightedCrossEntropy, CrossEntropy
from quickdraw.models.objectives import bootstrap_weights


def test_map3_hand_worked_ranks():
    # Scores rank classes 0 > 1 > 2 > 3 > 4 in every row; targets sit at ranks 1, 2, 3, 4.
    preds = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]]).repeat(4, 1)
    target = torch.tensor([0, 1, 2, 3])
    metric = MeanAveragePrecisionAtK(k=3)
    metric.update(preds, target)
    assert metric.compute().item() == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert average_precision_at_k(preds, target).tolist() == pytest.approx([1, 1 / 2, 1 / 3, 0])


def test_map3_kaggle_example():
    # Kaggle's apk([1], [2, 1, 3], 3) = 1/2: the true class is the second guess.
    preds = torch.tensor([[0.1, 0.5, 0.9, 0.2]])  # ranking: 2, 1, 3
    assert MeanAveragePrecisionAtK()(preds, torch.tensor([1])).item() == pytest.approx(0.5)


def test_map3_accumulates_over_batches_like_one_shot():
    gen = torch.Generator().manual_seed(0)
    preds, target = torch.randn(200, 20, generator=gen), torch.randint(0, 20, (200,), generator=gen)
    streamed = MeanAveragePrecisionAtK()
    for p, t in zip(preds.split(37), target.split(37), strict=True):
        streamed.update(p, t)
    one_shot = MeanAveragePrecisionAtK()
    one_shot.update(preds, target)
    assert streamed.compute().item() == pytest.approx(one_shot.compute().item(), abs=1e-6)
    assert streamed.count.item() == 200


def test_map3_matches_torchmetrics_retrieval_mrr():
    # Same number, computed the expensive way: one (query=sample, document=class) row per score.
    # Probabilities, because RetrievalMRR counts a document with a score <= 0 as irrelevant.
    gen = torch.Generator().manual_seed(1)
    preds = torch.randn(50, 7, generator=gen).softmax(1)
    target = torch.randint(0, 7, (50,), generator=gen)
    mrr = RetrievalMRR(top_k=3)(
        preds.flatten(),
        F.one_hot(target, 7).flatten().bool(),
        indexes=torch.arange(50).repeat_interleave(7),
    )
    assert MeanAveragePrecisionAtK()(preds, target).item() == pytest.approx(mrr.item(), abs=1e-6)


def test_map3_reduces_like_ddp_ranks():
    gen = torch.Generator().manual_seed(2)
    preds, target = torch.randn(64, 10, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    rank0, rank1, whole = (
        MeanAveragePrecisionAtK(),
        MeanAveragePrecisionAtK(),
        MeanAveragePrecisionAtK(),
    )
    rank0.update(preds[:40], target[:40])
    rank1.update(preds[40:], target[40:])
    whole.update(preds, target)
    rank0.merge_state(rank1)  # applies each state's dist_reduce_fx, as a DDP sync does
    assert rank0.compute().item() == pytest.approx(whole.compute().item(), abs=1e-6)


def test_map3_k1_is_top1_accuracy_and_scale_free():
    gen = torch.Generator().manual_seed(3)
    logits, target = torch.randn(100, 5, generator=gen), torch.randint(0, 5, (100,), generator=gen)
    acc = (logits.argmax(1) == target).float().mean().item()
    assert MeanAveragePrecisionAtK(k=1)(logits, target).item() == pytest.approx(acc)
    assert MeanAveragePrecisionAtK()(logits.softmax(1), target).item() == pytest.approx(
        MeanAveragePrecisionAtK()(logits, target).item()
    )


def test_map3_rejects_bad_shapes_and_is_zero_when_empty():
    with pytest.raises(ValueError, match="preds"):
        MeanAveragePrecisionAtK().update(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert MeanAveragePrecisionAtK().compute().item() == 0.0


def test_worst_fraction_mean():
    acc = torch.tensor([0.9, 0.1, 0.5, 0.8, 0.3, 0.7, 0.6, 0.4, 0.95, 0.85, 0.2, 0.99])
    assert worst_fraction_mean(acc.numpy(), 0.1) == pytest.approx(
        (0.1 + 0.2) / 2
    )  # ceil(1.2) = 2 classes


def test_class_weighted_ce_is_uniform_until_update_then_follows_formula():
    loss = ClassWeightedCrossEntropy(num_classes=4, floor=0.25)
    logits, target = torch.randn(8, 4), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    assert torch.equal(loss.weight, torch.ones(4))
    assert loss(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target).item(), rel=1e-6
    )

    loss.update(torch.tensor([1.0, 0.5, 0.0, 0.75]))
    raw = torch.tensor([0.25, 0.75, 1.25, 0.5])  # (1 - acc) + floor
    expected = raw / raw.mean()
    assert torch.allclose(loss.weight, expected)
    assert loss.weight.mean().item() == pytest.approx(1.0)
    assert loss(logits, target).item() == pytest.approx(
        F.cross_entropy(logits, target, weight=expected).item(), rel=1e-6
    )


def test_class_weights_live_in_the_state_dict():
    trained = ClassWeightedCrossEntropy(num_classes=3)
    trained.update(torch.tensor([0.2, 0.9, 0.5]))
    resumed = ClassWeightedCrossEntropy(num_classes=3)
    resumed.load_state_dict(trained.state_dict())
    assert torch.equal(resumed.weight, trained.weight)


def test_class_weighted_ce_validates_its_inputs():
    with pytest.raises(ValueError, match="floor"):
        ClassWeightedCrossEntropy(num_classes=3, floor=0.0)
    with pytest.raises(ValueError, match="shape"):
        ClassWeightedCrossEntropy(num_classes=3).update(torch.ones(4))


@pytest.mark.parametrize("loss_cls", [CrossEntropy, ClassWeightedCrossEntropy])
def test_bootstrap_weights_equal_a_resampled_batch(loss_cls):
    loss = loss_cls(num_classes=5)
    loss.update(torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7]))  # a no-op for plain CrossEntropy
    gen = torch.Generator().manual_seed(4)
    logits, target = torch.randn(12, 5, generator=gen), torch.randint(0, 5, (12,), generator=gen)
    idx = torch.randint(0, 12, (12,), generator=gen)
    counts = torch.bincount(idx, minlength=12).float()
    assert loss(logits, target, counts).item() == pytest.approx(
        loss(logits[idx], target[idx]).item(), rel=1e-5
    )


def test_bootstrap_weights_are_independent_resamples():
    torch.manual_seed(0)
    w = bootstrap_weights(3, 50)
    assert w.shape == (3, 50)
    assert torch.equal(w.sum(1), torch.full((3,), 50.0))
    assert torch.equal(w, w.round()) and (w >= 0).all()
    assert not torch.equal(w[0], w[1])
    assert (w == 0).float().mean() > 0.2  # about 1/e of the samples are left out of each resample


def test_plain_ce_label_smoothing_matches_torch():
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    got = CrossEntropy(num_classes=4, label_smoothing=0.1)(logits, target)
    assert got.item() == pytest.approx(
        F.cross_entropy(logits, target, label_smoothing=0.1).item(), rel=1e-6
    )
