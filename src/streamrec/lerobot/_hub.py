"""Uploading a finished dataset to the Hugging Face Hub with huggingface_hub's large-folder upload."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from streamrec import StreamrecError
from streamrec.dataset._reader import DatasetReader

log = logging.getLogger("streamrec.lerobot")

CODEBASE_TAG = "v3.0"
"""LeRobot loads a Hub dataset at the tag named after its format version."""


class PushError(StreamrecError, RuntimeError):
    """Uploading to the Hub failed; the dataset on disk is complete and unchanged. The cause is `__cause__`."""


def push_folder(root: Path, repo_id: str, *, branch: str | None = None, tags: list | None = None,
                license: str | None = "apache-2.0", tag_version: bool = True, push_videos: bool = True,
                private: bool | None = None, allow_patterns: list[str] | str | None = None,
                card_kwargs: dict[str, Any] | None = None) -> None:
    """Create the dataset repository if needed, upload `root` (resumable: run again after a failure to
    send only what is missing), then the dataset card and the format-version tag.

    Raises:
        PushError: any failure of the Hub or the network, with what to do next.
    """
    root = Path(root)
    try:
        from huggingface_hub import HfApi
    except ImportError as e:
        raise PushError("pushing to the Hub needs huggingface_hub (pip install 'streamrec[lerobot]')") from e
    if not repo_id or "/" not in repo_id:
        raise PushError(f"repo_id = {repo_id!r}: pushing to the Hub needs '<user or org>/<name>'")
    ignore = [".streamrec/**", "images/**"] + ([] if push_videos else ["videos/**"])
    step = "creating the repository"
    try:
        api = HfApi()
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if branch:
            step = f"creating branch {branch}"
            api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
        step = "uploading the files"
        api.upload_large_folder(repo_id=repo_id, folder_path=root, repo_type="dataset", revision=branch,
                                private=private, allow_patterns=allow_patterns, ignore_patterns=ignore,
                                print_report=False)
        step = "uploading the dataset card"
        api.upload_file(path_or_fileobj=dataset_card(root, repo_id, tags, license, card_kwargs or {}).encode(),
                        path_in_repo="README.md", repo_id=repo_id, repo_type="dataset", revision=branch)
        if tag_version:
            step = f"tagging {CODEBASE_TAG}"
            existing = {t.name for t in api.list_repo_refs(repo_id, repo_type="dataset").tags}
            if CODEBASE_TAG in existing:
                api.delete_tag(repo_id, tag=CODEBASE_TAG, repo_type="dataset")
            api.create_tag(repo_id, tag=CODEBASE_TAG, revision=branch, repo_type="dataset")
    except Exception as e:  # noqa: BLE001 - every Hub or network failure ends the same way
        raise PushError(
            f"pushing {root} to the Hub as {repo_id} failed while {step}: {type(e).__name__}: {_first_line(e)}. "
            f"The dataset on disk is complete and unchanged; push it later with `hf upload-large-folder {repo_id} "
            f"{root} --repo-type=dataset` (or run this again: the upload resumes)") from e
    log.info("pushed %s to the Hub as dataset %s", root, repo_id)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "(no message)"


def dataset_card(root: Path, repo_id: str, tags: list | None, license: str | None, extra: dict[str, Any]) -> str:
    """A README.md for the Hub: YAML header (license, tags, where the data files are), then the info."""
    info = DatasetReader(root).info or {}
    header: dict[str, Any] = {
        "license": license,
        "task_categories": ["robotics"],
        "tags": ["LeRobot", "streamrec", *(tags or [])],
        "configs": [{"config_name": "default", "data_files": "data/*/*.parquet"}],
        **extra,
    }
    cameras = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    body = (f"# {repo_id}\n\nA LeRobot v3.0 dataset recorded with streamrec: {info['total_episodes']} episode(s), "
            f"{info['total_frames']} frames at {info['fps']} fps, robot type {info.get('robot_type')}, "
            f"cameras {', '.join(cameras) or 'none'}.\n\n## meta/info.json\n\n```json\n"
            f"{json.dumps(info, indent=2)}\n```\n")
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n" + body
