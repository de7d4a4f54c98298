"""course_lib's top level: plain imports of the names the notebooks use."""
import sys

import course_lib


def test_every_exported_name_is_bound_to_its_submodules_own():
    for name in course_lib.__all__:
        value = getattr(course_lib, name)  # an AttributeError here is a broken export
        if callable(value):
            module = sys.modules[value.__module__]
            assert module.__name__.startswith("course_lib."), (name, module.__name__)
            assert getattr(module, name) is value


def test_the_package_imports_plainly():
    # no lazy module __getattr__: what the package exports is bound when it is imported
    assert not hasattr(course_lib, "__getattr__")
    assert {"SimpleCNN", "load_mnist", "rel_error", "gradient_check", "convolve2d"} <= set(course_lib.__all__)
