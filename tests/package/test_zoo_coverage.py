"""Keras Applications zoo coverage, the way Torch-Pruning tests torchvision: every family
evolves, compacts exactly (relative difference <= 1e-4 with non-trivial BatchNorm statistics)
and shrinks. One constructor per family by default; ``--zoo=all`` runs every constructor."""

import pytest
from helpers import cifar_images

from tf_evosyn import zoo


def pytest_generate_tests(metafunc):
    if "constructor" in metafunc.fixturenames:
        everything = metafunc.config.getoption("--zoo") == "all"
        names = [
            name
            for members in zoo.FAMILIES.values()
            for name, _ in (members if everything else members[:1])
        ]
        metafunc.parametrize("constructor", names)


@pytest.mark.slow
def test_application_evolves_compacts_exactly_and_shrinks(constructor, datasets_dir):
    images = cifar_images(datasets_dir, count=4, size=zoo.input_size(constructor))
    result = zoo.check_application(constructor, images)
    assert result.clusters_after < result.clusters_before  # synthesis killed clusters
    assert result.relative_difference <= 1e-4, result
    assert result.params_after < result.params_before, result
