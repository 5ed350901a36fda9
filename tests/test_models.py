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
