"""No service imports another service: each of the five packages talks to the others over HTTP only.

Shared code lives in `shared/`; the one place that imports every service is `runner/` (it starts
them, migrates them, and builds the OpenAPI document from their descriptions).
"""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO_ROOT

SERVICE_PACKAGES = ("auth_service", "keys_service", "chat_service", "quota_service", "gateway")


def imported_packages(path) -> set[str]:
    """The top-level package of every absolute import in one module (function-level ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", SERVICE_PACKAGES)
def test_a_service_imports_no_other_service(package):
    modules = sorted((REPO_ROOT / package).rglob("*.py"))
    assert modules, package
    crossings = [
        f"{module.relative_to(REPO_ROOT)} imports {other}"
        for module in modules
        for other in sorted(imported_packages(module) & set(SERVICE_PACKAGES) - {package})
    ]
    assert crossings == []


def test_the_check_sees_an_import_of_another_service(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import os\nfrom chat_service.schemas import X\n\ndef f():\n    import keys_service.api\n"
    )
    assert imported_packages(module) == {"os", "chat_service", "keys_service"}
