"""friction_lib's Unsloth calls, checked against the pinned Unsloth wheel's source.

Unsloth cannot be imported without a CUDA GPU, so this reads the source instead: the wheel pinned in
requirements-gpu.txt is downloaded once from PyPI into the cache (skipped, with pip's reason, when that fails),
every `FastLanguageModel.<method>(...)` call, every `<model>.save_pretrained_merged(...)`-style call and every call
of an Unsloth function imported by name (`PatchDPOTrainer()`) in friction_lib is found with ast, and each must name
a function that exists and names every keyword we pass as a parameter: a keyword that only a **kwargs would take counts as a problem, since Unsloth may silently ignore it.
A forwarder decorated `functools.wraps(Target.method)` is checked against its target.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from friction_lib.gpu_setup import read_pins
from friction_lib.models import cache_dir

ROOT = Path(__file__).resolve().parents[1]
SAVE_METHODS = ("save_pretrained_merged", "save_pretrained_gguf", "push_to_hub_merged", "push_to_hub_gguf")
MODEL_CLASS = "FastLanguageModel"
FUNCTIONS = ("PatchDPOTrainer",)  # Unsloth functions friction_lib imports and calls by name
GPU_SOURCES = (
    "unsloth/models/",
    "unsloth/save.py",
)  # the CUDA classes (unsloth/_cpu_init.py has CPU stand-ins)


@dataclass
class Call:
    where: str  # file:line in friction_lib
    target: str  # "FastLanguageModel.from_pretrained" or "save_pretrained_merged"
    n_positional: int
    keywords: list[str]


@pytest.fixture(scope="module")
def unsloth_index() -> dict[str, ast.AST]:
    """The pinned wheel's classes (by name) and its unsloth_<save method> functions."""
    version = read_pins(ROOT / "requirements-gpu.txt", ("unsloth",))["unsloth"].split("==")[1]
    folder = cache_dir() / "wheels"
    wheels = sorted(folder.glob(f"unsloth-{version}-*.whl"))
    if not wheels:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
            + [f"unsloth=={version}", "-d", str(folder)],
            capture_output=True,
            text=True,
        )
        wheels = sorted(folder.glob(f"unsloth-{version}-*.whl"))
        if not wheels:
            pytest.skip(f"the unsloth=={version} wheel could not be downloaded: {done.stderr.strip()[-300:]}")
    index: dict[str, ast.AST] = {}
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in wheel.namelist():
            text = wheel.read(name).decode() if name.startswith(GPU_SOURCES) and name.endswith(".py") else ""
            if "class Fast" in text or "def unsloth_" in text or any(f"def {f}(" in text for f in FUNCTIONS):
                for node in ast.parse(text).body:
                    if isinstance(node, ast.ClassDef | ast.FunctionDef):
                        index.setdefault(node.name, node)
    return index


def call_target(node: ast.Call) -> str | None:
    """ "FastLanguageModel.<method>", a save method's name, an Unsloth function's name, or None for other calls."""
    if isinstance(node.func, ast.Name):
        return node.func.id if node.func.id in FUNCTIONS else None
    if not isinstance(node.func, ast.Attribute):
        return None
    owner, method = node.func.value, node.func.attr
    if isinstance(owner, ast.Name) and owner.id == MODEL_CLASS:
        return f"{MODEL_CLASS}.{method}"
    return method if method in SAVE_METHODS else None


def calls_in(source: str, where: str) -> list[Call]:
    found = []
    for node in ast.walk(ast.parse(source)):
        target = call_target(node) if isinstance(node, ast.Call) else None
        if target is not None:
            keywords = [k.arg for k in node.keywords if k.arg]
            found.append(Call(f"{where}:{node.lineno}", target, len(node.args), keywords))
    return found


def our_calls() -> list[Call]:
    return [
        call
        for path in sorted((ROOT / "friction_lib").glob("*.py"))
        for call in calls_in(path.read_text(), f"friction_lib/{path.name}")
    ]


def find_method(index: dict[str, ast.AST], cls: str, method: str) -> ast.FunctionDef | None:
    """`method` on class `cls` or its bases (as named in the wheel)."""
    node = index.get(cls)
    if not isinstance(node, ast.ClassDef):
        return None
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == method:
            return item
    bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
    return next((f for b in bases if (f := find_method(index, b, method))), None)


def wrapped_target(function: ast.FunctionDef) -> tuple[str, str] | None:
    """('FastLlamaModel', 'get_peft_model') for a def decorated @functools.wraps(FastLlamaModel.get_peft_model)."""
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("wraps"):
            wrapped = decorator.args[0] if decorator.args else None
            if isinstance(wrapped, ast.Attribute) and isinstance(wrapped.value, ast.Name):
                return wrapped.value.id, wrapped.attr
    return None


def resolve(index: dict[str, ast.AST], call: Call) -> tuple[ast.FunctionDef | None, bool]:
    """(the function a call reaches, whether its first parameter is a bound `self`)."""
    if call.target in SAVE_METHODS:  # Unsloth binds save.py's unsloth_<name> to the model
        function = index.get(f"unsloth_{call.target}")
        return (function if isinstance(function, ast.FunctionDef) else None), True
    if call.target in FUNCTIONS:
        function = index.get(call.target)
        return (function if isinstance(function, ast.FunctionDef) else None), False
    function = find_method(index, *call.target.split("."))
    while function is not None and (target := wrapped_target(function)):
        function = find_method(index, *target)
    return function, False


def problems(index: dict[str, ast.AST], calls: list[Call]) -> list[str]:
    found = []
    for call in calls:
        function, bound = resolve(index, call)
        if function is None:
            found.append(f"{call.where}: {call.target} does not exist in the pinned Unsloth")
            continue
        args = function.args
        positional = [a.arg for a in args.posonlyargs + args.args][1 if bound else 0 :]
        named = set(positional) | {a.arg for a in args.kwonlyargs}
        unknown = [k for k in call.keywords if k not in named]
        if unknown:
            swallowed = " (only its **kwargs would take it)" if args.kwarg else ""
            found.append(f"{call.where}: {call.target} names no parameter {', '.join(unknown)}{swallowed}")
        if call.n_positional > len(positional) and args.vararg is None:
            found.append(f"{call.where}: {call.target} takes {len(positional)} positional arguments")
    return found


def test_our_unsloth_calls_match_the_pinned_wheel(unsloth_index):
    calls = our_calls()
    targets = {call.target for call in calls}
    assert {
        f"{MODEL_CLASS}.from_pretrained",
        f"{MODEL_CLASS}.get_peft_model",
        f"{MODEL_CLASS}.patch_peft_model",  # the DPO stage: the SFT adapter attached, then Unsloth's patches
        "PatchDPOTrainer",
        "save_pretrained_merged",
    } <= targets
    assert problems(unsloth_index, calls) == []


def test_a_misspelt_keyword_or_a_missing_method_is_caught(unsloth_index):
    """The check above can fail: the same code with one wrong keyword per call, and a method Unsloth lacks."""
    source = (
        "FastLanguageModel.from_pretrained(model_name='m', max_seq_lenght=8)\n"
        "FastLanguageModel.get_peft_model(model, r=8, lora_alfa=16)\n"
        "model.save_pretrained_merged('out', tok, save_metod='merged_16bit')\n"
        "FastLanguageModel.merge_and_unload(model)\n"
        "FastLanguageModel.patch_peft_model(model, use_gradient_checkpoint='unsloth')\n"
        "PatchDPOTrainer(beta=0.1)\n"
    )
    found = problems(unsloth_index, calls_in(source, "snippet.py"))
    assert len(found) == 6, found
    words = (
        "max_seq_lenght",
        "lora_alfa",
        "save_metod",
        "merge_and_unload does not exist",
        "use_gradient_checkpoint",
    )
    for word in (*words, "PatchDPOTrainer names no parameter beta"):
        assert any(word in line for line in found), (word, found)
