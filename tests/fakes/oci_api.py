"""A fake OCI API: a real HTTP server on 127.0.0.1 that the real ``oci`` SDK clients talk to.

Point a client at it with ``service_endpoint=api.url`` (the SDK appends its API version, e.g.
``/20180222``) and a config file from :meth:`FakeOciApi.write_config` (a throwaway RSA API key;
the SDK signs every request, the fake requires the ``Authorization: Signature …`` header but
does not verify it).

Served (JSON bodies in the API's camelCase shapes, as the SDK's model ``attribute_map`` s name
them)::

    GET  /20180222/clusters/{id}                          Container Engine
    GET  /20180222/nodePools?compartmentId&clusterId      (summaries: no ``nodes``)
    GET  /20180222/nodePools/{id}
    GET  /20180222/workRequests?compartmentId&resourceId, /workRequests/{id}, …/{id}/errors
    PUT  /20180222/clusters/{id}, /20180222/nodePools/{id}                  202 + work request
    POST /20180222/clusters/{id}/actions/updateEndpointConfig              202 + work request
    GET  /20160918/subnets/{id} | vcns/{id} | securityLists/{id} | networkSecurityGroups/{id}
    GET  /20160918/networkSecurityGroups?compartmentId[&vcnId][&displayName]
    GET  /20160918/networkSecurityGroups/{id}/securityRules
    POST /20160918/networkSecurityGroups                  create (200, ``etag``)
    DELETE /20160918/networkSecurityGroups/{id}           204; 409 while a cluster/pool uses it
    POST /20160918/networkSecurityGroups/{id}/actions/addSecurityRules | removeSecurityRules
         | updateSecurityRules                            (at most 25 rules added per call)
    GET  /20160918/images/{id}                            Compute
    GET  /20160918/tenancies/{id}, /20160918/compartments?compartmentId    Identity
    GET  /20200531/logGroups?compartmentId, /20200531/logGroups/{id}/logs  Logging
    GET  /20190901/configuration?compartmentId            Audit (retentionPeriodDays)
    GET  /20180608/secrets?compartmentId, /secrets/{id}, /secrets/{id}/versions   Vault
    PUT  /20180608/secrets/{id}                           new version or ``currentVersionNumber``
    POST /20180608/secrets/{id}/actions/rotate            202 + ``opc-work-request-id``
    GET  /20190301/secretbundles/{id}?stage|versionNumber|secretVersionName       Secrets
    PUT  any other single-resource path above             merge the body (top-level keys)

Lists page with ``limit``/``page`` and answer ``opc-next-page``; single resources carry an
``etag`` header and every change makes a new one; writes check ``if-match`` (412
``NoEtagMatch``). Errors are OCI error bodies (``{"code": …, "message": …}``); a missing
resource is ``404 NotAuthorizedOrNotFound`` as OCI answers it. Faults (status, or delay) are
switched on per path glob (``after_apply=True``: the write happens, the answer is lost); every
request is recorded with its retry token and JSON body.

Writes honour ``opc-retry-token``: the same token with the same request replays the first
answer and changes nothing; with a different request, or once the resource is deleted, it is
``409 InvalidatedRetryToken``. Only successful answers use up a token.

Container Engine updates answer 202 with ``opc-work-request-id``; the change is applied when the
work request succeeds, at its ``work_request_polls``-th GET (``<= 0``: at once), or at
:meth:`FakeOciApi.finish_work_requests`. :meth:`FakeOciApi.fail_next_work_request` makes the
next one fail, changing nothing. A secret rotation completes at the ``work_request_polls``-th
read of that secret (its document, versions or a bundle) after the rotate call.

The store is a plain dict of JSON documents keyed by OCID (``api.resources``), with
:meth:`add`, :meth:`update` and :meth:`remove`, so write paths can reuse the fake. Secret
contents are kept per version in ``api.secret_contents`` and served only as secret bundles.
"""

from __future__ import annotations

from tests.fakes.oci.model import (
    COLLECTIONS,
    REGION,
    TENANCY,
    NodeCycle,
    RecordedRequest,
    error_body,
    now_iso,
)
from tests.fakes.oci.store import FakeOciApi, running_fake_oci_api

__all__ = [
    "COLLECTIONS",
    "REGION",
    "TENANCY",
    "FakeOciApi",
    "NodeCycle",
    "RecordedRequest",
    "error_body",
    "now_iso",
    "running_fake_oci_api",
]
