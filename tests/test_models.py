import pytest
import torch

import models


def test_dla_has_the_reference_parameter_count():
    assert models.count_parameters(models.build_model("dla")) == 16_291_386


def test_baseline_shapes_follow_caffe_rounding():
    model = models.build_model("baseline")
    x = torch.zeros(2, 3, 32, 32)
    x = torch.max_pool2d(model.conv1(x), 3, 2, ceil_mode=True)
    assert x.shape[-1] == 16
    assert model.fc.in_features == 64 * 4 * 4
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_caffe_init_uses_the_example_scales():
    torch.manual_seed(0)
    model = models.build_model("baseline", init="caffe")
    assert model.conv1.weight.std().item() == pytest.approx(1e-4, rel=0.1)
    assert model.conv2.weight.std().item() == pytest.approx(1e-2, rel=0.1)
    assert model.fc.weight.std().item() == pytest.approx(1e-1, rel=0.1)
    assert all((layer.bias == 0).all() for layer in
               (model.conv1, model.conv2, model.conv3, model.fc))
    with pytest.raises(ValueError, match="baseline model only"):
        models.build_model("dla", init="caffe")


def test_same_seed_gives_the_same_weights():
    torch.manual_seed(3)
    a = models.build_model("baseline").state_dict()
    torch.manual_seed(3)
    b = models.build_model("baseline").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_step_schedule_divides_by_ten_for_the_last_fifth():
    recipe = models.RECIPES["baseline"]
    lrs = [models.learning_rate(recipe, s, 100) for s in range(100)]
    assert lrs[:80] == [0.001] * 80
    assert lrs[80:] == [pytest.approx(0.0001)] * 20


def test_cosine_schedule_anneals_to_zero():
    recipe = models.RECIPES["dla"]
    assert models.learning_rate(recipe, 0, 100) == pytest.approx(0.1)
    assert models.learning_rate(recipe, 50, 100) == pytest.approx(0.05)
    assert models.learning_rate(recipe, 100, 100) == pytest.approx(0.0)


def test_bias_groups_carry_their_multiplier():
    groups = models.parameter_groups(models.build_model("baseline"), 2.0)
    assert [g["lr_mult"] for g in groups] == [1.0, 2.0]
    assert len(groups[1]["params"]) == 4


def _sgd_steps(make_optimizer, steps, start=0, model=None, optimizer=None):
    """Train a fresh baseline (or continue ``model``) on fixed random
    batches with a changing learning rate; return model and optimiser."""
    if model is None:
        torch.manual_seed(0)
        model = models.build_model("baseline")
        optimizer = make_optimizer(models.parameter_groups(model, 2.0))
    for step in range(start, start + steps):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(8, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (8,), generator=g)
        for group in optimizer.param_groups:
            group["lr"] = 0.01 / (1 + step) * group["lr_mult"]
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, optimizer


def ours(groups):
    return models.SGD(groups, lr=0.01, momentum=0.9, weight_decay=0.004)


def torchs(groups):
    return torch.optim.SGD(groups, lr=0.01, momentum=0.9, weight_decay=0.004)


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(),
                                                 b.parameters()))


def test_sgd_matches_torch_optim_bit_for_bit():
    mine, _ = _sgd_steps(ours, 5)
    reference, _ = _sgd_steps(torchs, 5)
    moved, _ = _sgd_steps(ours, 0)
    assert not _same_weights(mine, moved)
    assert _same_weights(mine, reference)


def test_sgd_resumes_from_its_own_and_from_torch_state():
    straight, _ = _sgd_steps(ours, 5)
    for first in (ours, torchs):
        model, optimizer = _sgd_steps(first, 3)
        state = optimizer.state_dict()
        resumed = ours(models.parameter_groups(model, 2.0))
        resumed.load_state_dict(state)
        model, _ = _sgd_steps(None, 2, start=3, model=model,
                              optimizer=resumed)
        assert _same_weights(model, straight)
    # without the momentum buffers the continuation differs
    model, _ = _sgd_steps(ours, 3)
    model, _ = _sgd_steps(None, 2, start=3, model=model,
                          optimizer=ours(models.parameter_groups(model, 2.0)))
    assert not _same_weights(model, straight)


def test_sgd_leaves_frozen_parameters_alone():
    torch.manual_seed(0)
    model = models.build_model("baseline")
    for p in model.parameters():
        p.requires_grad_(False)
    head = list(model.classifier().parameters())
    for p in head:
        p.requires_grad_(True)
    before = [p.clone() for p in model.parameters()]
    optimizer = ours([{"params": head, "lr_mult": 1.0}])
    torch.nn.functional.cross_entropy(
        model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])
    ).backward()
    optimizer.step()
    changed = [not torch.equal(p, q)
               for p, q in zip(model.parameters(), before)]
    assert changed[-2:] == [True, True] and not any(changed[:-2])
