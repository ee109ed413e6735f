"""Stand-ins for what no machine here can run: a Kubernetes API server with Argo's resources, and Argo.

No Kubernetes cluster, and so no Argo Workflows controller, can run on these
machines. `StandInKubernetes` is a small HTTP server on 127.0.0.1 that serves
the `argoproj.io/v1alpha1` `workflows` and `workflowtemplates` of one
namespace (403 in any other, as for a namespaced Role) the way the API server serves custom
resources: create, get,
update (with the resourceVersion read, else 409), list and watch (`?watch=true`,
JSON lines, from a resourceVersion, with field and label selectors) and
merge-patch. Like a server with Argo's schema it refuses (422) any object
that hera's models of Argo's API (`hera.workflows.models`, generated from
Argo's own specification) don't read back unchanged, a Workflow name Argo
would refuse (over 63 characters) and invalid label values. It records every
call as the (API group, resource, verb) that Kubernetes' RBAC would check,
and ends every watch after one event, as a real server ends watches at its
own timeout, so a client must read again and watch again. It also serves
core/v1 `persistentvolumeclaims` (create, get, list by labels, merge-patch,
delete), refusing (422) a claim that kubernetes-validate (1.32, strict)
refuses, and plays the volume provisioner: a claim is a folder under
`storage`, deleted with it, and a claim with a `dataSource` starts as a
copy of its source's folder (CSI volume cloning).

`StandInArgo` plays the controller for the tests: `run_pod` runs the
Workflow's step as Argo's pod would, from the referenced template with the
Workflow's parameters substituted (`{{workflow.name}}`,
`{{workflow.parameters.X}}`), as a process with the container's command,
args and env (a Secret's values for `secretKeyRef`), "python" being this
environment's interpreter, a mounted claim being its folder (the mount path
rewritten to it in the env), and reports Running, then Succeeded or Failed with
the pod node's exit code. A stop (`spec.shutdown`) sends the process SIGTERM,
as Argo does, and ends the Workflow as Argo reports a stop. `finish` sets any
other final status a test scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import uuid
from pathlib import Path

import kubernetes_validate
from aiohttp import web
from hera.workflows import models as argo

PREFIX = "/apis/argoproj.io/v1alpha1/namespaces/{namespace}/{plural}"
MODELS = {"workflows": argo.Workflow, "workflowtemplates": argo.WorkflowTemplate}
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CLAIMS = "persistentvolumeclaims"
K8S = "1.32.0"
PARAMETER = re.compile(r"\{\{workflow\.parameters\.([A-Za-z0-9_-]+)\}\}")


def _reads_back(model, obj: dict) -> bool:
    return model.model_validate(obj).model_dump(mode="json", by_alias=True, exclude_none=True) == obj


def _merge(target: dict, patch: dict) -> dict:
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class StandInKubernetes:
    def __init__(self, namespace: str, storage: Path | None = None):
        self.namespace = namespace
        self.storage = Path(storage or tempfile.mkdtemp(prefix="stand-in-volumes-"))
        self.objects: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, str, str]] = []  # (API group, resource, verb)
        self.received: list[tuple[str, str, dict]] = []  # (verb, resource, body) as sent
        self.refused: list[str] = []
        self.events: list[tuple[int, str, str, dict]] = []  # (resourceVersion, type, plural, object)
        self.created = asyncio.Queue()  # names of Workflows as they are created
        self._version = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)  # watchers that hang up
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()

    def rules_used(self) -> set[tuple[str, str, str]]:
        return set(self.calls)

    async def set_status(self, name: str, status: dict) -> None:
        wf = self.objects[("workflows", name)]
        await self._store("workflows", {**wf, "status": status}, "MODIFIED")

    # -- the API ------------------------------------------------------------

    def claim_folder(self, name: str) -> Path | None:
        """Where a claim's volume is, if the claim exists."""
        return self.storage / name if (CLAIMS, name) in self.objects else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        match = re.fullmatch(r"/apis/([^/]+)/v1alpha1/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?", request.path)
        core = re.fullmatch(r"/api/v1/namespaces/([^/]+)/(persistentvolumeclaims)(?:/([^/]+))?", request.path)
        if core:
            group, (namespace, plural, name) = "", core.groups()
        else:
            group, namespace, plural, name = match.groups() if match else ("?", "?", request.path, None)
        watching = request.query.get("watch", "").lower() in ("1", "t", "true")  # as Go's ParseBool
        verb = {
            "GET": "watch" if watching else ("get" if name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(request.method, request.method.lower())
        self.calls.append((group, plural, verb))
        if not core and (group != "argoproj.io" or plural not in MODELS):
            return self._status(404, f"no {request.path} here")
        if namespace != self.namespace:  # the service's Role is namespaced
            message = (
                f'{plural}.{group} is forbidden: User "system:serviceaccount:{self.namespace}:pipelines"'
                f' cannot {verb} resource "{plural}" in API group "{group}" in the namespace "{namespace}"'
            )
            return self._status(403, message)
        body = await request.json() if request.can_read_body else None
        if body is not None:
            self.received.append((verb, plural, body))
        if core:
            return await self._claims(request, verb, name, body)
        if verb == "create":
            return await self._create(plural, body)
        if verb == "get":
            found = self.objects.get((plural, name))
            return web.json_response(found) if found else self._status(404, f"{plural} {name!r} not found")
        if verb == "update":
            return await self._update(plural, name, body)
        if verb == "patch":
            return await self._patch(request, plural, name, body)
        if verb == "list":
            items = [o for (p, _), o in self.objects.items() if p == plural and self._selected(o, request)]
            kind = MODELS[plural].__name__ + "List"
            return web.json_response(
                {"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "items": items, "metadata": {}}
            )
        if verb == "watch":
            return await self._watch(request, plural)
        return self._status(405, f"{request.method} is not served here")

    async def _claims(self, request: web.Request, verb: str, name: str | None, body) -> web.Response:
        """PersistentVolumeClaims, and the provisioner's folders behind them."""
        found = self.objects.get((CLAIMS, name)) if name else None
        if verb == "create":
            try:
                kubernetes_validate.validate(body, K8S, strict=True)
            except kubernetes_validate.ValidationError as e:
                self.refused.append(f"{CLAIMS}: {e.message}")
                return self._status(422, f"PersistentVolumeClaim is invalid: {e.message}")
            name = body["metadata"]["name"]
            if (CLAIMS, name) in self.objects:
                return self._status(409, f'persistentvolumeclaims "{name}" already exists')
            source = ((body.get("spec") or {}).get("dataSource") or {}).get("name")
            folder = self.storage / name
            if source and self.claim_folder(source):
                shutil.copytree(self.storage / source, folder)  # a CSI driver's clone
            else:
                folder.mkdir()
            stored = await self._store(
                CLAIMS, {**body, "metadata": {**body["metadata"], "uid": str(uuid.uuid4())}}
            )
            return web.json_response(stored, status=201)
        if verb == "list":
            items = [o for (p, _), o in self.objects.items() if p == CLAIMS and self._selected(o, request)]
            return web.json_response(
                {"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "items": items}
            )
        if found is None:
            return self._status(404, f'persistentvolumeclaims "{name}" not found')
        if verb == "get":
            return web.json_response(found)
        if verb == "patch":
            if request.content_type != "application/merge-patch+json" or set(body) != {"metadata"}:
                return self._status(422, f"unexpected patch {request.content_type} {body}")
            return web.json_response(await self._store(CLAIMS, _merge(found, body), "MODIFIED"))
        if verb == "delete":
            del self.objects[(CLAIMS, name)]
            shutil.rmtree(self.storage / name)  # reclaim policy Delete
            return web.json_response(found)
        return self._status(405, f"{request.method} is not served here")

    def _refuse(self, plural: str, body: dict) -> str | None:
        meta = body.get("metadata") or {}
        name = meta.get("name") or ""
        if not _reads_back(MODELS[plural], body):
            return f"{plural}: the object does not match Argo's schema (hera's models)"
        if plural == "workflows" and (len(name) > 63 or not DNS_LABEL.match(name)):
            return f"workflow name {name!r} must be a DNS label of at most 63 characters"
        for key, value in (meta.get("labels") or {}).items():
            if len(value) > 63 or not LABEL_VALUE.match(value):
                return f"metadata.labels: Invalid value: {value!r} for {key}"
        return None

    async def _create(self, plural: str, body: dict) -> web.Response:
        problem = self._refuse(plural, body)
        if problem:
            self.refused.append(problem)
            return self._status(422, problem)
        name = body["metadata"]["name"]
        if (plural, name) in self.objects:
            return self._status(409, f"{plural} {name!r} already exists")
        stored = await self._store(
            plural, {**body, "metadata": {**body["metadata"], "uid": str(uuid.uuid4())}}
        )
        if plural == "workflows":
            self.created.put_nowait(name)
        return web.json_response(stored, status=201)

    async def _update(self, plural: str, name: str, body: dict) -> web.Response:
        current = self.objects.get((plural, name))
        if current is None:
            return self._status(404, f"{plural} {name!r} not found")
        problem = self._refuse(plural, body)
        if problem:
            self.refused.append(problem)
            return self._status(422, problem)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return self._status(409, "the object has been modified; read it again")
        return web.json_response(await self._store(plural, body, "MODIFIED"))

    async def _patch(self, request: web.Request, plural: str, name: str, body: dict) -> web.Response:
        current = self.objects.get((plural, name))
        if current is None:
            return self._status(404, f"{plural} {name!r} not found")
        if request.content_type != "application/merge-patch+json":
            return self._status(415, f"custom resources take merge patches, not {request.content_type}")
        if set(body) - {"spec", "metadata"} or not _reads_back(argo.WorkflowSpec, body.get("spec") or {}):
            self.refused.append(f"patch {body}")
            return self._status(422, "the patch does not match Argo's schema")
        return web.json_response(await self._store(plural, _merge(current, body), "MODIFIED"))

    async def _watch(self, request: web.Request, plural: str) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or 0)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        async with self._changed:
            await self._changed.wait_for(
                lambda: any(
                    v > since and p == plural and self._selected(o, request) for v, _, p, o in self.events
                )
            )
            _, kind, _, obj = next(
                e for e in self.events if e[0] > since and e[2] == plural and self._selected(e[3], request)
            )
        await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
        await response.write_eof()  # one event per watch: the client must watch again
        return response

    def _selected(self, obj: dict, request: web.Request) -> bool:
        meta = obj.get("metadata") or {}
        for term in filter(None, request.query.get("fieldSelector", "").split(",")):
            key, value = term.split("=", 1)
            if key != "metadata.name" or meta.get("name") != value:
                return False
        for term in filter(None, request.query.get("labelSelector", "").split(",")):
            key, value = term.split("=", 1)
            if (meta.get("labels") or {}).get(key) != value:
                return False
        return True

    async def _store(self, plural: str, obj: dict, kind: str = "ADDED") -> dict:
        async with self._changed:
            self._version += 1
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self._version)}}
            obj["metadata"]["namespace"] = self.namespace
            self.objects[(plural, obj["metadata"]["name"])] = obj
            self.events.append((self._version, kind, plural, obj))
            self._changed.notify_all()
        return obj

    @staticmethod
    def _status(code: int, message: str) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
        return web.json_response(body, status=code)


class StandInArgo:
    """What Argo's controller and a pod would do with a Workflow, for the tests (see the module)."""

    def __init__(self, api: StandInKubernetes, secrets: dict[str, dict[str, str]], workdir, python_path=None):
        self.api, self.secrets, self.workdir = api, secrets, workdir
        self.python_path = python_path  # what the image has on its Python path besides the venv's

    def pod_of(self, name: str) -> dict:
        """The Workflow's step as a Kubernetes Pod (main container only), parameters substituted."""
        wf = self.api.objects[("workflows", name)]
        template = self.api.objects[("workflowtemplates", wf["spec"]["workflowTemplateRef"]["name"])]
        spec = template["spec"]
        container = {**spec["templates"][0]["container"], "name": "main"}
        values = {p["name"]: p["value"] for p in spec.get("arguments", {}).get("parameters", [])}
        values.update({p["name"]: p["value"] for p in wf["spec"].get("arguments", {}).get("parameters", [])})
        for key in ("command", "args"):
            container[key] = [self._substitute(x, name, values) for x in container.get(key, [])]
        pod_spec = {
            "containers": [container],
            "restartPolicy": "Never",
            "activeDeadlineSeconds": wf["spec"].get(
                "activeDeadlineSeconds", spec.get("activeDeadlineSeconds")
            ),
        }
        for key in ("nodeSelector", "tolerations", "securityContext", "serviceAccountName"):
            if key in spec:
                pod_spec[key] = spec[key]
        # Argo merges the Workflow's volumes into its template's, by name.
        volumes = {v["name"]: v for v in [*spec.get("volumes", []), *wf["spec"].get("volumes", [])]}
        if volumes:
            pod_spec["volumes"] = list(volumes.values())
        pod_spec["automountServiceAccountToken"] = spec.get("automountServiceAccountToken", True)
        labels = {
            **(spec.get("podMetadata") or {}).get("labels", {}),
            **(wf["spec"].get("podMetadata") or {}).get("labels", {}),
        }
        metadata = {"name": f"{name}-notebook-1", "labels": labels}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}

    async def run_pod(self, name: str) -> None:
        """Run the step as its pod would; Running, then Succeeded or Failed (or stopped)."""
        pod = self.pod_of(name)
        container = pod["spec"]["containers"][0]
        command = [sys.executable if x == "python" else x for x in container["command"]] + container["args"]
        env = {"PATH": os.environ["PATH"], "HOME": str(self.workdir)}
        if self.python_path:
            env["PYTHONPATH"] = str(self.python_path)
        for var in container.get("env", []):
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            env[var["name"]] = self.secrets[ref["name"]][ref["key"]] if ref else var["value"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            claim = (volumes[mount["name"]].get("persistentVolumeClaim") or {}).get("claimName")
            if claim is None:
                continue  # /dev/shm, the Hadoop configuration: nothing the notebooks here read
            folder = self.api.claim_folder(claim)
            if folder is None:  # the pod can't be scheduled; Argo fails it at its deadline
                message = f'persistentvolumeclaim "{claim}" not found'
                return await self.finish(name, "Failed", message, None, message)
            path = mount["mountPath"]
            env = {k: str(folder) + v[len(path) :] if v.startswith(path) else v for k, v in env.items()}
        await self.api.set_status(name, {"phase": "Running"})
        process = await asyncio.create_subprocess_exec(
            *command, env=env, cwd=self.workdir, start_new_session=True
        )
        waiting = asyncio.ensure_future(process.wait())
        stopped = False
        while not waiting.done():
            await asyncio.wait([waiting], timeout=0.2)
            if not stopped and self.api.objects[("workflows", name)]["spec"].get("shutdown"):
                process.send_signal(signal.SIGTERM)  # Argo's stop: the main container gets SIGTERM
                stopped = True
        code = waiting.result()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a container's end ends all of its processes
        if stopped:
            message = "Stopped with strategy 'Stop'"
            await self.finish(name, "Failed", message, code, message)
        elif code == 0:
            await self.finish(name, "Succeeded", "", 0, "")
        else:
            await self.finish(name, "Failed", f"Error (exit code {code})", code, f"Error (exit code {code})")

    async def finish(self, name: str, phase: str, message: str, code: int | None, node_message: str) -> None:
        node = {
            "id": f"{name}-1",
            "name": name,
            "type": "Pod",
            "phase": phase,
            "finishedAt": "2026-12-02T00:00:00Z",
        }
        if node_message:
            node["message"] = node_message
        if code is not None:
            node["outputs"] = {"exitCode": str(code)}
        status = {"phase": phase, "nodes": {node["id"]: node}}
        if message:
            status["message"] = message
        await self.api.set_status(name, status)

    @staticmethod
    def _substitute(text: str, name: str, values: dict[str, str]) -> str:
        text = PARAMETER.sub(lambda m: values[m.group(1)], text.replace("{{workflow.name}}", name))
        if "{{" in text:
            raise AssertionError(f"Argo could not resolve {text[:200]!r}")
        return text
