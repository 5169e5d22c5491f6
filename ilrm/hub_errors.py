"""huggingface_hub's failures as messages that say what to do (shared by model loading and the
evaluation harness's fetch). Imports only the error type, so any module may use it."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

from .errors import ILRMInputError


def network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions huggingface_hub lets through when the Hub cannot be reached (no network, DNS,
    refused connection, timeout, ``HF_HUB_OFFLINE``): those of its HTTP client (``httpx2`` in
    huggingface_hub 2.x, ``httpx`` in 1.x, ``requests`` before) and ``OfflineModeIsEnabled``."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    found: list[type[BaseException]] = [OfflineModeIsEnabled]
    names = {"httpx2": ("ConnectError", "TimeoutException", "RemoteProtocolError", "ProxyError"),
             "httpx": ("ConnectError", "TimeoutException", "RemoteProtocolError", "ProxyError"),
             "requests": ("ConnectionError", "Timeout")}
    for module, attrs in names.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        found += [c for a in attrs if isinstance(c := getattr(mod, a, None), type) and issubclass(c, BaseException)]
    return tuple(found)


def hub_offline_message(repo_id: str, detail: str = "") -> str:
    """What to do when a Hub model is not in the local cache and the Hub cannot be reached."""
    return (
        f"model '{repo_id}' is not (completely) in the local Hugging Face cache and the Hub cannot be reached "
        f"(no network, or HF_HUB_OFFLINE=1){detail}. Run once where the Hub is reachable (the files are cached "
        f"for later offline use), or download it elsewhere with `hf download {repo_id} --local-dir DIR`, copy DIR "
        "here and pass --model DIR, or point HF_HUB_CACHE at a cache that holds it"
    )


@contextlib.contextmanager
def hub_model_errors(repo_id: str, revision: str | None = None) -> Iterator[None]:
    """huggingface_hub's errors for a model repo id as :class:`ILRMInputError` messages."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    network = network_errors()
    try:
        yield
    except GatedRepoError as e:
        raise ILRMInputError(
            f"model repo '{repo_id}' is gated: request access on https://huggingface.co/{repo_id} and set a token "
            "(`export HF_TOKEN=hf_...` or `hf auth login`)"
        ) from e
    except RevisionNotFoundError as e:
        raise ILRMInputError(f"revision {revision!r} does not exist in model repo '{repo_id}' (--revision)") from e
    except RepositoryNotFoundError as e:
        raise ILRMInputError(
            f"model repo '{repo_id}' was not found on the Hub (or it is private: set HF_TOKEN); check the id, "
            "or pass a local checkpoint folder"
        ) from e
    except LocalEntryNotFoundError as e:  # before EntryNotFoundError: it is a subclass
        raise ILRMInputError(hub_offline_message(repo_id, f" ({e})")) from e
    except EntryNotFoundError as e:
        raise ILRMInputError(f"model repo '{repo_id}' has no config.json: not a checkpoint in our format ({e})") from e
    except network as e:
        raise ILRMInputError(hub_offline_message(repo_id, f" ({type(e).__name__}: {e})")) from e
