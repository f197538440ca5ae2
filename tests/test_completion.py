"""The conformance check (dfsim.testing.check_completion_method) run against EVERY registered
completion method, one test per (method, property), and the errors of completion.make.

A method registered in dfsim.completion gets all of these tests without adding any.
"""

import pytest

from dfsim import completion
from dfsim.errors import UserError
from dfsim.registry import entry
from dfsim.testing import COMPLETION_PROPERTIES, check_completion_method

METHODS = completion.available_methods()


@pytest.mark.parametrize("prop", COMPLETION_PROPERTIES)
@pytest.mark.parametrize("name", METHODS)
def test_conformance(name, prop):
    check_completion_method(name, properties=[prop])


@pytest.mark.parametrize("name", ["halrtc", "silrtc"])
def test_conformance_with_non_default_parameters(name):
    check_completion_method(name, {"max_iters": 3, "tol": 0.0})


def test_conformance_in_other_packet_layouts():
    for rows in (1, 2, 6):
        check_completion_method("altec", shape=(3, 6, 5), rows_per_packet=rows)
        check_completion_method("caltec", shape=(3, 6, 5), rows_per_packet=rows)


def test_every_registered_method_is_covered():
    assert set(METHODS) >= {
        "zeros",
        "linear",
        "altec",
        "caltec",
        "silrtc",
        "halrtc",
        "inpaint_ns",
        "inpaint_telea",
    }


def test_trained_methods_declare_it():
    assert completion.make("altec").needs_fit and not completion.make("linear").needs_fit


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(UserError, match="'nope'") as exc:
        completion.make("nope")
    assert all(n in str(exc.value) for n in METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_unknown_parameter_is_named(name):
    with pytest.raises(UserError, match=rf"methods\.bogus: not a parameter of the {name} ") as exc:
        completion.make(name, bogus=1)
    assert all(p in str(exc.value) for p in entry("completion", name).params)


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("halrtc", {"max_iters": 0}, r"methods\.max_iters: 0 is out of range \(must be >= 1\)"),
        ("silrtc", {"tol": -1.0}, r"methods\.tol: -1\.0 is out of range"),
        ("altec", {"ridge": 0.0}, r"methods\.ridge: 0\.0 is out of range \(must be > 0\)"),
        ("altec", {"fit_images": 5}, r"methods\.fit_images: 5 is out of range"),
        ("inpaint_ns", {"radius": -2.0}, r"methods\.radius: -2\.0 is out of range"),
        ("inpaint_telea", {"radius": "big"}, r"methods\.radius: expected a number, got string"),
        ("halrtc", {"alpha": [1.0, 2.0]}, r"methods\.alpha: expected a list of 3 values"),
        ("halrtc", {"rho": 1.0, "rho_max": 0.5}, r"rho_max must be a number >= rho"),
    ],
)
def test_bad_parameter_values_are_user_errors(name, params, message):
    with pytest.raises(UserError, match=message):
        completion.make(name, **params)


def test_make_passes_parameters():
    m = completion.make("halrtc", max_iters=7, tol=0.0)
    assert (m.max_iters, m.tol) == (7, 0.0)
    assert completion.make("inpaint_ns", radius=2).radius == 2
