"""Sharded checkpoints: a ``torch.distributed.checkpoint`` (DCP) directory written by all ranks.

Under FSDP ``work_dir/epoch_3.pth`` is a directory::

    .metadata  __0_0.distcp  __1_0.distcp   model and optimizer shards (DCP, any rank count)
    trainer_state.pt                        the rest of the checkpoint, written by rank zero
    accumulated_grads_rank{r}.pt            inside an accumulation window: rank r's gradients

It is written under ``<name>.tmp-<token>`` and renamed when complete, so a directory under a
real name is always whole. Reading never unpickles arbitrary objects: ``.metadata`` goes through
an unpickler that knows only DCP's metadata classes, everything else through
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import pickle
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import fsspec
import torch
from torch import nn

from trainer import dist
from trainer.checkpoint.io import (
    TMP_MARK,
    join,
    load_checkpoint,
    save_checkpoint,
    weight_problems,
)

METADATA = ".metadata"
TRAINER_STATE = "trainer_state.pt"


def grads_file(rank: int) -> str:
    return f"accumulated_grads_rank{rank}.pt"


def is_sharded_checkpoint(path: str) -> bool:
    """Whether ``path`` is a DCP checkpoint directory (it holds ``.metadata``)."""
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    return fs.isdir(fs_path) and fs.exists(join(fs_path, METADATA))


# -- safe reading ---------------------------------------------------------------------------

class _MetadataUnpickler(pickle.Unpickler):
    """Rebuilds DCP's ``Metadata`` and refuses every other global (no code can run)."""

    _PLAIN = {("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
              ("torch.serialization", "_get_layout"), ("torch", "Size"),
              ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"),
              ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str) -> Any:
        from torch.distributed.checkpoint import metadata

        allowed = (module, name) in self._PLAIN or (
            module == metadata.__name__ and isinstance(getattr(metadata, name, None), type)
            and getattr(metadata, name).__module__ == module) or (
            module == "torch" and isinstance(getattr(torch, name, None), torch.dtype))
        if not allowed:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of DCP's metadata")
        return super().find_class(module, name)


def _reader(path: str) -> Any:
    """An fsspec DCP reader whose metadata and non-tensor values load safely."""
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeReader(FsspecReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            with self.fs.create_stream(self._get_metadata_path(kwargs.get("rank")), "rb") as f:
                try:
                    metadata = _MetadataUnpickler(f).load()
                except (pickle.UnpicklingError, EOFError, AttributeError) as err:
                    raise ValueError(f"{path}/{METADATA} is not DCP metadata that loads "
                                     f"safely, so it was refused: {err}") from err
            metadata.storage_meta = metadata.storage_meta or StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(path)


def _planner() -> Any:
    from torch.distributed.checkpoint import DefaultLoadPlanner

    class SafePlanner(DefaultLoadPlanner):
        """Non-tensor values (optimizer hyper-parameters) must pass the weights-only unpickler
        before DCP's own ``torch.load`` sees them."""

        def load_bytes(self, read_item: Any, value: BinaryIO) -> None:
            try:
                torch.load(value, weights_only=True)
            except pickle.UnpicklingError as err:
                raise ValueError(f"a value in the checkpoint needs arbitrary unpickling, "
                                 f"so it was refused: {err}") from err
            value.seek(0)
            super().load_bytes(read_item, value)

    return SafePlanner()


@contextlib.contextmanager
def _single_process_is_meant() -> Iterator[None]:
    """DCP warns on every load without a process group; loading into one process is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _tensor_shapes(metadata: Any, prefix: str) -> dict[str, tuple[int, ...]]:
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    return {key[len(prefix):]: tuple(md.size)
            for key, md in metadata.state_dict_metadata.items()
            if key.startswith(prefix) and isinstance(md, TensorStorageMetadata)}


# -- saving ---------------------------------------------------------------------------------

def _optimizers(optim_wrapper: Any) -> dict[str, Any]:
    """``{name: OptimWrapper}``; one plain wrapper is named ``""``."""
    if optim_wrapper is None:
        return {}
    return dict(optim_wrapper.items()) if hasattr(optim_wrapper, "items") else {"": optim_wrapper}


class PendingSave:
    """A sharded save in progress; :meth:`wait` finishes it and gives it its real name.

    Every rank calls :meth:`wait` at the same point (it ends with a barrier).
    """

    def __init__(self, future: Any, publish: Callable[[], None], group: Any = None) -> None:
        self.future, self.publish, self.group = future, publish, group

    def wait(self) -> None:
        if self.future is not None:
            self.future.result()
        dist.barrier()  # every rank's shard and rank zero's metadata are written
        if dist.is_main_process():
            self.publish()
        dist.barrier()
        if self.group is not None:
            torch.distributed.destroy_process_group(self.group)
            self.group = None


def save(ckpt: dict[str, Any], path: str, model: nn.Module, optim_wrapper: Any,
         async_save: bool = False) -> PendingSave | None:
    """Write ``ckpt`` (a :meth:`checkpoint_dict`) as a DCP directory at ``path``.

    Every rank must call it. With ``async_save`` the shards are copied to memory and written in
    the background; the returned :class:`PendingSave` must be waited on before the next save.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    from trainer.dist.fsdp import local_accumulated_grads

    wrappers = _optimizers(optim_wrapper) if "optimizer" in ckpt else {}
    tensors: dict[str, Any] = {"model": get_model_state_dict(model)}
    if wrappers:
        tensors["optimizers"] = {name: get_optimizer_state_dict(model, w.optimizer)
                                 for name, w in wrappers.items()}
    in_window = any(not w.should_update() for w in wrappers.values())
    plain = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer")}
    plain["optimizer_counts"] = {name: w.inner_count for name, w in wrappers.items()}
    plain["sharded"] = {"world_size": dist.get_world_size(), "accumulated_grads": in_window}

    fs, final = fsspec.core.url_to_fs(str(path))
    token = dist.broadcast_object(uuid.uuid4().hex[:8])
    tmp = f"{final}{TMP_MARK}{token}"
    fs.makedirs(tmp, exist_ok=True)
    if in_window:
        with fs.open(join(tmp, grads_file(dist.get_rank())), "wb") as f:
            torch.save({"grads": local_accumulated_grads(model)}, f)
    if dist.is_main_process():
        save_checkpoint(plain, join(fs.unstrip_protocol(tmp), TRAINER_STATE))
    writer = FsspecWriter(fs.unstrip_protocol(tmp))

    def publish() -> None:
        if fs.exists(final):  # a re-save of the same name: swap, so a whole one always exists
            old = f"{final}{TMP_MARK}old-{token}"  # a leftover if killed: removed at next start
            fs.mv(final, old, recursive=True)
            fs.mv(tmp, final, recursive=True)
            fs.rm(old, recursive=True)
        else:
            fs.mv(tmp, final, recursive=True)

    if not async_save:
        dcp.save(tensors, storage_writer=writer)
        PendingSave(None, publish).wait()
        return None
    group = torch.distributed.new_group(backend="gloo")  # the background write's own channel
    return PendingSave(dcp.async_save(tensors, storage_writer=writer, process_group=group),
                       publish, group)


# -- loading --------------------------------------------------------------------------------

def load(path: str, model: nn.Module, optim_wrapper: Any = None,
         strict: bool = True) -> dict[str, Any]:
    """Load the weights (and, given ``optim_wrapper``, the optimizer state and accumulation
    window) of the sharded checkpoint ``path`` into ``model``, sharded or not.

    Returns the rest of the checkpoint (meta, RNG, callbacks, data position ...).
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    reader = _reader(path)
    metadata = reader.read_metadata()
    plain = load_checkpoint(join(path, TRAINER_STATE))
    saved = _tensor_shapes(metadata, "model.")
    own = get_model_state_dict(model)
    problems = weight_problems({k: tuple(v.shape) for k, v in own.items()}, saved)
    if problems and strict:
        raise ValueError(
            f"the weights in {path} do not fit {type(model).__name__}: " + "; ".join(problems)
            + ". Load it into the model it was trained with, or pass strict=False to load "
            "only the weights that match.")
    targets: dict[str, Any] = {"model": {k: v for k, v in own.items()
                                         if saved.get(k) == tuple(v.shape)}}
    wrappers = _optimizers(optim_wrapper)
    has_optim = any(k.startswith("optimizers.") for k in metadata.state_dict_metadata)
    if wrappers and has_optim:
        targets["optimizers"] = {name: get_optimizer_state_dict(model, w.optimizer)
                                 for name, w in wrappers.items()}
    with _single_process_is_meant():
        dcp.load(targets, storage_reader=reader, planner=_planner(),
                 no_dist=not dist.is_distributed())
    set_model_state_dict(model, targets["model"], options=StateDictOptions(strict=False))
    for name, wrapper in wrappers.items() if has_optim else ():
        set_optimizer_state_dict(model, wrapper.optimizer, targets["optimizers"][name])
        wrapper.inner_count = plain["optimizer_counts"][name]
    if wrappers and plain["sharded"]["accumulated_grads"]:
        _load_accumulated_grads(path, model, plain["sharded"]["world_size"])
    return plain


def _load_accumulated_grads(path: str, model: nn.Module, saved_world_size: int) -> None:
    from trainer.dist.fsdp import is_sharded, restore_accumulated_grads

    if not is_sharded(model) or dist.get_world_size() != saved_world_size:
        raise ValueError(
            f"{path} was saved inside a gradient-accumulation window by {saved_world_size} FSDP "
            f"processes, whose unreduced gradients only those ranks can continue; resume it "
            f"with strategy='fsdp' on {saved_world_size} processes, or resume from a "
            "checkpoint at the end of an accumulation window (e.g. an epoch end)")
    grads = load_checkpoint(join(path, grads_file(dist.get_rank())))["grads"]
    restore_accumulated_grads(model, grads)


def consolidate(src: str, dst: str) -> None:
    """Turn the sharded checkpoint ``src`` into one ``weights_only`` file ``dst``.

    ``dst`` holds ``meta`` and the full ``state_dict``, as a single-process checkpoint does,
    so ``Trainer.test(ckpt_path=dst)`` and ``torch.load(dst, weights_only=True)`` read it.
    """
    import torch.distributed.checkpoint as dcp

    if not is_sharded_checkpoint(src):
        raise ValueError(
            f"{src} is not a sharded checkpoint directory (it has no {METADATA}); pass a "
            "directory that Trainer(strategy='fsdp') wrote, such as work_dir/epoch_3.pth")
    reader = _reader(src)
    metadata = reader.read_metadata()
    state = {key: torch.empty(md.size, dtype=md.properties.dtype)
             for key, md in ((k, metadata.state_dict_metadata[f"model.{k}"])
                             for k in _tensor_shapes(metadata, "model."))}
    with _single_process_is_meant():
        dcp.load({"model": state}, storage_reader=reader, planner=_planner(), no_dist=True)
    meta = load_checkpoint(join(src, TRAINER_STATE))["meta"]
    save_checkpoint({"meta": {**meta, "consolidated_from": str(src)}, "state_dict": state}, dst)
