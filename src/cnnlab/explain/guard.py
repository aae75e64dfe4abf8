"""The promise every explanation keeps: the model comes back exactly as it was, also when the method raises.

Explanation methods need to change a model while they run: evaluation mode (dropout off, batch norm on its
running statistics), parameters that need no gradient, forward hooks to read a layer, ReLUs whose backward
rule is replaced. Libraries that do this by hand leave things behind when something fails half-way (hooks
that keep whole activation maps alive, an ``inplace`` flag switched off, a model left in eval mode).
:class:`ModelState` snapshots everything such a method could touch and :func:`preserved` restores it on
the way out of a ``with`` block, whatever happened inside.

What is kept: every module's attributes (``training``, ``inplace`` and any other flag, added or removed
attributes) and the contents of its dictionaries (submodules, parameters, buffers, every kind of hook); each
parameter's ``requires_grad``, ``.grad`` and tensor hooks; buffer values (batch-norm statistics); PyTorch's
global module hooks and the grad mode. Parameter values are not copied (that would double the memory of a
large model); explanations never write them, and a write through autograd is caught by the tensor's version
counter and reported as a defect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules import module as _torch_module

__all__ = ["ModelState", "preserved"]

# PyTorch's process-wide module hooks (torch.nn.modules.module.register_module_forward_hook and friends).
_GLOBAL_HOOK_DICTS = (
    "_global_backward_pre_hooks",
    "_global_backward_hooks",
    "_global_forward_pre_hooks",
    "_global_forward_hooks",
    "_global_forward_hooks_always_called",
    "_global_forward_hooks_with_kwargs",
    "_global_buffer_registration_hooks",
    "_global_module_registration_hooks",
    "_global_parameter_registration_hooks",
)

# nn.Module's own dictionaries: submodules, parameters, buffers and every kind of hook.
_MODULE_DICTS = tuple(k for k, v in vars(nn.Module()).items() if isinstance(v, dict))


@dataclass
class _ModuleRecord:
    """One module's attributes and the contents of its dictionaries (hooks, children, tensors)."""

    module: nn.Module
    attrs: dict
    dicts: dict[str, dict]  # contents of nn.Module's non-empty dictionaries
    empty: list[str]  # nn.Module's dictionaries that were empty

    @classmethod
    def capture(cls, module: nn.Module) -> _ModuleRecord:
        attrs = dict(vars(module))
        contents, empty = {}, []
        for key in _MODULE_DICTS:
            value = attrs.get(key)
            if value:
                contents[key] = dict(value)
            elif value is not None:
                empty.append(key)  # most hook dicts are empty: restore only has to empty them again
        return cls(module, attrs, contents, empty)

    def restore(self) -> None:
        for key, saved in self.dicts.items():
            target = self.attrs[key]
            target.clear()  # in place: hook handles keep weak references to these very dicts
            target.update(saved)
        for key in self.empty:
            target = self.attrs[key]
            if target:
                target.clear()
        current = vars(self.module)
        current.clear()
        current.update(self.attrs)

    def changes(self, name: str) -> list[str]:
        label = name or "the model"
        current = vars(self.module)
        out = [f"{label}: attribute {k!r} added" for k in current.keys() - self.attrs.keys()]
        out += [f"{label}: attribute {k!r} removed" for k in self.attrs.keys() - current.keys()]
        for key in self.attrs.keys() & current.keys():
            now, then = current[key], self.attrs[key]
            if key in self.dicts or key in self.empty:
                if now is not then or _dict_differs(now, self.dicts.get(key, {})):
                    out.append(f"{label}: {key} changed")
            elif now is not then and not _same_value(now, then):
                out.append(f"{label}: {key} changed from {then!r} to {now!r}")
        return out


@dataclass
class _TensorRecord:
    """A parameter's or buffer's autograd settings (and a buffer's values)."""

    name: str
    tensor: torch.Tensor
    requires_grad: bool
    grad: torch.Tensor | None
    hooks: object
    post_accumulate_hooks: object
    version: int
    values: torch.Tensor | None = None  # a copy, for buffers only

    @property
    def is_parameter(self) -> bool:
        return self.values is None

    @classmethod
    def capture(cls, name: str, tensor: torch.Tensor, copy_values: bool) -> _TensorRecord:
        return cls(
            name,
            tensor,
            tensor.requires_grad,
            tensor.grad if tensor.is_leaf else None,
            tensor._backward_hooks,
            getattr(tensor, "_post_accumulate_grad_hooks", None),
            tensor._version,
            tensor.detach().clone() if copy_values else None,
        )

    def restore(self) -> None:
        t = self.tensor  # each setting compared before it is set: reading is cheaper than writing
        if t.requires_grad != self.requires_grad and t.is_leaf:
            t.requires_grad_(self.requires_grad)
        if t.is_leaf and t.grad is not self.grad:
            t.grad = self.grad
        if t._backward_hooks is not self.hooks:
            t._backward_hooks = self.hooks
        if getattr(t, "_post_accumulate_grad_hooks", None) is not self.post_accumulate_hooks:
            t._post_accumulate_grad_hooks = self.post_accumulate_hooks
        if self.values is not None and t._version != self.version:
            with torch.no_grad():
                t.copy_(self.values)

    def changes(self) -> list[str]:
        t, out = self.tensor, []
        if t.requires_grad != self.requires_grad:
            out.append(f"{self.name}: requires_grad changed to {t.requires_grad}")
        if t.is_leaf and t.grad is not self.grad:
            out.append(f"{self.name}: .grad changed")
        if t._backward_hooks is not self.hooks:
            out.append(f"{self.name}: tensor hooks changed")
        if self.values is not None:
            if not torch.equal(t.detach(), self.values):
                out.append(f"{self.name}: values changed")
        elif t._version != self.version:
            out.append(f"{self.name}: values written in place")
        return out


@dataclass
class ModelState:
    """A snapshot of everything an explanation may touch in a model; ``restore`` puts it back."""

    names: list[tuple[str, nn.Module]]
    modules: list[_ModuleRecord]
    tensors: list[_TensorRecord]
    global_hooks: dict[str, dict] = field(default_factory=dict)
    grad_enabled: bool = True

    @classmethod
    def capture(cls, model: nn.Module) -> ModelState:
        """The state of ``model`` now (module attributes, hooks, flags, autograd settings, buffers)."""
        names = list(model.named_modules(remove_duplicate=False))
        seen: set[int] = set()
        modules, tensors = [], []
        for prefix, m in names:
            if id(m) in seen:
                continue
            seen.add(id(m))
            modules.append(_ModuleRecord.capture(m))
            for kind, table in ((False, m._parameters), (True, m._buffers)):
                for key, t in table.items():
                    if t is not None and id(t) not in seen:
                        seen.add(id(t))
                        tensors.append(_TensorRecord.capture(f"{prefix}.{key}" if prefix else key, t, kind))
        hooks = {name: dict(getattr(_torch_module, name)) for name in _GLOBAL_HOOK_DICTS
                 if isinstance(getattr(_torch_module, name, None), dict)}
        return cls(names, modules, tensors, hooks, torch.is_grad_enabled())

    def restore(self) -> None:
        """Put every module attribute, hook, flag, autograd setting and buffer back as captured."""
        for record in self.modules:
            record.restore()
        for record in self.tensors:
            record.restore()
        for name, saved in self.global_hooks.items():
            target = getattr(_torch_module, name)
            target.clear()
            target.update(saved)
        torch.set_grad_enabled(self.grad_enabled)

    def changes(self) -> list[str]:
        """What differs now from the snapshot, one line per difference (empty: nothing changed)."""
        root = self.names[0][1]
        out = []
        if list(root.named_modules(remove_duplicate=False)) != self.names:
            out.append("the module tree changed (a module was added, removed or replaced)")
        names = {id(m): n for n, m in reversed(self.names)}
        for record in self.modules:
            out += record.changes(names.get(id(record.module), "?"))
        for record in self.tensors:
            out += record.changes()
        for name, saved in self.global_hooks.items():
            if _dict_differs(getattr(_torch_module, name), saved):
                out.append(f"torch's {name} changed")
        if torch.is_grad_enabled() != self.grad_enabled:
            out.append("the grad mode changed")
        return out


def _dict_differs(now: dict, then: dict) -> bool:
    return now.keys() != then.keys() or any(now[k] is not then[k] for k in then)


def _same_value(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (objects whose == is not a plain truth value count as changed)
        return False


@contextmanager
def preserved(model: nn.Module) -> Iterator[ModelState]:
    """Run the ``with`` body on ``model`` and give the model back exactly as it was, also if the body raises.

    Parameters whose values the body wrote in place (through autograd) are a defect of the body: they
    cannot be restored without a copy of every weight, so the block raises instead of hiding it.
    """
    state = ModelState.capture(model)
    try:
        yield state
    finally:
        state.restore()
    written = [r.name for r in state.tensors if r.is_parameter and r.tensor._version != r.version]
    if written:
        raise RuntimeError(f"an explanation wrote the weights {written[:3]} of the model it explained")
