"""A fake Kubernetes API server: a real HTTP server on 127.0.0.1 speaking the Kubernetes REST API.

Reads. It serves ``GET /version``, the cluster-wide list path of every kind in ``SUPPORTED_KINDS``
(``/api/v1/pods``, ``/apis/apps/v1/deployments``…), the namespaced list paths
(``/api/v1/namespaces/{ns}/pods``) and single-object GETs. Lists are ``<Kind>List`` bodies that
honour ``limit`` and ``continue`` (opaque base64 tokens; an invalid or expired one gets a
``410 Gone`` Status) and ``labelSelector`` (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``,
``k in (a,b)``, ``k notin (a,b)``; a malformed one gets 400). Items are stored without
``kind``/``apiVersion``, as a real server lists them. Custom resources registered with
:meth:`FakeKubeApi.add_custom` are served the same way under ``/apis/{group}/{version}/…``.

Writes, on the same paths (built-in kinds and custom resources):

* ``POST`` to a collection creates (201): uid, ``resourceVersion``, ``creationTimestamp`` and
  ``generation: 1`` are assigned, ``generateName`` honoured; an existing name gets 409
  ``AlreadyExists``, a body namespace differing from the path's 400 ``BadRequest``.
* ``PUT`` on an object replaces it (200); a ``metadata.resourceVersion`` differing from the stored
  one gets 409 ``Conflict``; an unknown object 404 ``NotFound``.
* ``PATCH`` on an object (200) with ``application/json-patch+json`` (RFC 6902: add, remove,
  replace, move, copy, test), ``application/merge-patch+json`` (RFC 7386) or
  ``application/strategic-merge-patch+json`` (treated as RFC 7386; custom resources refuse it
  with 415 like the real server). A failed ``test`` op or a missing path gets 422 ``Invalid``
  naming the path and stores nothing; a patch that changes ``metadata.resourceVersion`` to a
  stale value gets 409; any other content type 415 ``UnsupportedMediaType``.
* ``DELETE`` of an object returns a ``Status`` with ``status: Success`` (200); a body
  ``{"preconditions": {"resourceVersion"|"uid": …}}`` that does not match gets 409 ``Conflict``.
* ``dryRun=All`` validates and returns the result but stores nothing (no resourceVersion bump);
  another ``dryRun`` value gets 400. ``fieldManager`` is accepted (and recorded in the query).
* Every stored change bumps the global resourceVersion and the object's; a no-op update stores
  nothing, as etcd would not be written. For workloads (Deployment, StatefulSet, DaemonSet,
  ReplicaSet, Job, CronJob) a change of ``spec`` bumps ``metadata.generation``; for custom
  resources a change outside ``metadata``/``status`` does. ``status`` is a subresource for
  workloads, Pods, Services, Namespaces, Nodes and Ingresses: writes to the object keep it.
* ``POST`` on an object path, or ``PUT``/``PATCH``/``DELETE`` on a collection path, gets 405
  ``MethodNotAllowed``; a body that is not JSON, or of another kind/apiVersion than the path,
  400 ``BadRequest``. Not served: subresources (``/status``, ``/scale``: 404), deletecollection
  (405), server-side apply (415) and watches (``watch`` is ignored, as is ``fieldSelector``).

Controllers, simulated as the client sees them:

* Rollouts (Deployment, StatefulSet, DaemonSet; see :meth:`FakeKubeApi.set_rollout`): when a
  write changes the generation (or creates the object), ``status`` converges on the ``after``+1-th
  subsequent read of that object (single GET or inclusion in a list), by behaviour ``healthy``,
  ``crashloop``, ``image-pull`` or ``stuck``; a status change bumps the resourceVersion. Pods of a
  simulated workload (one written to, created, or named in ``set_rollout``) are synthesized from
  its templates (labels from ``spec.selector.matchLabels`` and the template, ``ownerReferences``
  to the ReplicaSet ``{name}-{hash}`` / the StatefulSet / the DaemonSet) and are listable and
  GET-able at the Pod paths. Reading Pods does not advance a rollout.
* Token controller: a Secret of type ``kubernetes.io/service-account-token`` with the annotation
  ``kubernetes.io/service-account.name`` created by ``POST`` gets ``data.token``, ``data.ca.crt``
  and ``data.namespace`` before the next read returns it (the POST reply has none).

A bearer token is required. Every request is recorded (method, path, query, parsed JSON body and
Content-Type); faults can be switched on per path, per path and method (403/404/500… with a
proper ``Status`` body), globally (e.g. 401), and a delay added: all apply to every method.
The fake is deterministic (seeded random, hashed names) apart from timestamps, and one lock
guards every change to its store.

Point the real ``kubernetes`` client at it with :meth:`FakeKubeApi.write_kubeconfig`; read the
store directly with :meth:`FakeKubeApi.get_object`.
"""

from __future__ import annotations

from tests.fakes.kube.model import (
    DEFAULT_TOKEN,
    FAKE_CA_CRT,
    GENERATION_KINDS,
    JSON_PATCH,
    MERGE_PATCH,
    RESTARTED_AT,
    ROLLOUT_BEHAVIOURS,
    ROLLOUT_KINDS,
    SA_NAME_ANNOTATION,
    SA_TOKEN_TYPE,
    STATUS_SUBRESOURCE_KINDS,
    STRATEGIC_MERGE_PATCH,
    RecordedRequest,
    status_body,
)
from tests.fakes.kube.patching import (
    PatchError,
    apply_json_patch,
    merge_patch,
    parse_label_selector,
)
from tests.fakes.kube.paths import list_path, object_path, plural
from tests.fakes.kube.store import FakeKubeApi, closed_port, running_fake_kube_api

__all__ = [
    "DEFAULT_TOKEN",
    "FAKE_CA_CRT",
    "GENERATION_KINDS",
    "JSON_PATCH",
    "MERGE_PATCH",
    "RESTARTED_AT",
    "ROLLOUT_BEHAVIOURS",
    "ROLLOUT_KINDS",
    "SA_NAME_ANNOTATION",
    "SA_TOKEN_TYPE",
    "STATUS_SUBRESOURCE_KINDS",
    "STRATEGIC_MERGE_PATCH",
    "FakeKubeApi",
    "PatchError",
    "RecordedRequest",
    "apply_json_patch",
    "closed_port",
    "list_path",
    "merge_patch",
    "object_path",
    "parse_label_selector",
    "plural",
    "running_fake_kube_api",
    "status_body",
]
