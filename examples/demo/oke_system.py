"""What OKE runs in ``kube-system``, and the worker nodes.

These workloads run as root, privileged and on the host network, as node agents must; they
are in a system namespace, so okeguard leaves them out of the workload checks.
"""

from __future__ import annotations

import json
from datetime import timedelta

from builders import Cluster, Doc, at, ts
from controllers import daemonset, deployment
from kit import (
    CAPTURED_AT,
    CLUSTER_CREATED,
    IMAGES,
    REGION,
    ocid,
    probe,
    service,
    template,
)

# --- kube-system: what OKE runs -----------------------------------------------------------------


def kube_system(c: Cluster, cluster_ocid: str) -> None:
    ns = "kube-system"
    created = CLUSTER_CREATED + timedelta(minutes=4)
    oke = {"addonmanager.kubernetes.io/mode": "Reconcile"}
    for sa in (
        "coredns",
        "kube-proxy",
        "flannel",
        "csi-oci-node-sa",
        "proxymux-client",
        "clusterrole-aggregation-controller",
    ):
        c.service_account(
            ns, sa, created, labels=oke if sa != "clusterrole-aggregation-controller" else None
        )

    c.add("v1", "ConfigMap", "coredns", ns, created, {"data": {"Corefile": COREFILE}}, labels=oke)
    c.add(
        "v1",
        "ConfigMap",
        "kube-flannel-cfg",
        ns,
        created,
        {
            "data": {
                "cni-conf.json": FLANNEL_CNI,
                "net-conf.json": '{\n  "Network": "10.244.0.0/16",\n  "Backend": {\n    "Type": "vxlan"\n  }\n}\n',
            }
        },
        labels={"app": "flannel", "tier": "node", **oke},
    )
    c.add(
        "v1",
        "ConfigMap",
        "kube-proxy",
        ns,
        created,
        {"data": {"config.conf": KUBE_PROXY_CONF}},
        labels={"k8s-app": "kube-proxy", **oke},
    )

    dns_labels = {"k8s-app": "kube-dns"}
    deployment(
        c,
        ns,
        "coredns",
        template(
            dns_labels,
            {
                "serviceAccountName": "coredns",
                "priorityClassName": "system-cluster-critical",
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
                "containers": [
                    {
                        "name": "coredns",
                        "image": c.ref(IMAGES["coredns"], "tag"),
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "ports": [
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": 53},
                            {"name": "metrics", "containerPort": 9153},
                        ],
                        "resources": {
                            "limits": {"memory": "170Mi"},
                            "requests": {"cpu": "100m", "memory": "70Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                            "readOnlyRootFilesystem": True,
                        },
                        "livenessProbe": probe("/health", port=8080, delay=60),
                        "readinessProbe": probe("/ready", port=8181, delay=0),
                        "volumeMounts": [
                            {"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}
                        ],
                    }
                ],
                "volumes": [
                    {
                        "name": "config-volume",
                        "configMap": {
                            "name": "coredns",
                            "items": [{"key": "Corefile", "path": "Corefile"}],
                        },
                    }
                ],
            },
        ),
        created=created,
        rollouts=[created, at("2026-10-28T06:31:55")],
        replicas=2,
        labels={**dns_labels, "kubernetes.io/name": "CoreDNS", **oke},
    )
    service(
        c,
        ns,
        "kube-dns",
        created,
        dns_labels,
        [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "targetPort": 53},
            {"name": "metrics", "port": 9153, "targetPort": 9153},
        ],
        cluster_ip="10.96.5.5",
        labels={**dns_labels, "kubernetes.io/name": "CoreDNS", **oke},
    )

    node_critical = {
        "priorityClassName": "system-node-critical",
        "hostNetwork": True,
        "tolerations": [{"operator": "Exists"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
    }
    proxy_labels = {"k8s-app": "kube-proxy"}
    daemonset(
        c,
        ns,
        "kube-proxy",
        template(
            proxy_labels,
            {
                **node_critical,
                "serviceAccountName": "kube-proxy",
                "containers": [
                    {
                        "name": "kube-proxy",
                        "image": c.ref(IMAGES["kube-proxy"], "tag"),
                        "command": [
                            "/usr/local/bin/kube-proxy",
                            "--config=/var/lib/kube-proxy/config.conf",
                            "--hostname-override=$(NODE_NAME)",
                        ],
                        "env": [
                            {
                                "name": "NODE_NAME",
                                "valueFrom": {
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}
                                },
                            }
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {"name": "kube-proxy", "mountPath": "/var/lib/kube-proxy"},
                            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                            {"name": "lib-modules", "mountPath": "/lib/modules", "readOnly": True},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                    {
                        "name": "xtables-lock",
                        "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"},
                    },
                    {"name": "lib-modules", "hostPath": {"path": "/lib/modules", "type": ""}},
                ],
            },
        ),
        created=created,
        labels={**proxy_labels, **oke},
        generation=4,
    )

    flannel_labels = {"app": "flannel", "tier": "node"}
    daemonset(
        c,
        ns,
        "kube-flannel-ds",
        template(
            flannel_labels,
            {
                **node_critical,
                "serviceAccountName": "flannel",
                "initContainers": [
                    {
                        "name": "install-cni-plugin",
                        "image": c.ref(IMAGES["flannel-cni"], "tag"),
                        "command": ["cp"],
                        "args": ["-f", "/flannel", "/opt/cni/bin/flannel"],
                        "volumeMounts": [{"name": "cni-plugin", "mountPath": "/opt/cni/bin"}],
                    },
                    {
                        "name": "install-cni",
                        "image": c.ref(IMAGES["flannel"], "tag"),
                        "command": ["cp"],
                        "args": [
                            "-f",
                            "/etc/kube-flannel/cni-conf.json",
                            "/etc/cni/net.d/10-flannel.conflist",
                        ],
                        "volumeMounts": [
                            {"name": "cni", "mountPath": "/etc/cni/net.d"},
                            {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                        ],
                    },
                ],
                "containers": [
                    {
                        "name": "kube-flannel",
                        "image": c.ref(IMAGES["flannel"], "tag"),
                        "command": ["/opt/bin/flanneld"],
                        "args": ["--ip-masq", "--kube-subnet-mgr"],
                        "env": [
                            {
                                "name": "POD_NAME",
                                "valueFrom": {
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                                },
                            },
                            {
                                "name": "POD_NAMESPACE",
                                "valueFrom": {
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    }
                                },
                            },
                            {"name": "EVENT_QUEUE_DEPTH", "value": "5000"},
                        ],
                        "resources": {"requests": {"cpu": "100m", "memory": "50Mi"}},
                        "securityContext": {
                            "privileged": False,
                            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"]},
                        },
                        "volumeMounts": [
                            {"name": "run", "mountPath": "/run/flannel"},
                            {"name": "flannel-cfg", "mountPath": "/etc/kube-flannel/"},
                            {"name": "xtables-lock", "mountPath": "/run/xtables.lock"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "run", "hostPath": {"path": "/run/flannel", "type": ""}},
                    {"name": "cni-plugin", "hostPath": {"path": "/opt/cni/bin", "type": ""}},
                    {"name": "cni", "hostPath": {"path": "/etc/cni/net.d", "type": ""}},
                    {"name": "flannel-cfg", "configMap": {"name": "kube-flannel-cfg"}},
                    {
                        "name": "xtables-lock",
                        "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"},
                    },
                ],
            },
        ),
        created=created,
        labels={**flannel_labels, **oke},
        generation=3,
    )

    proxymux_labels = {"app": "proxymux-client"}
    daemonset(
        c,
        ns,
        "proxymux-client",
        template(
            proxymux_labels,
            {
                **node_critical,
                "serviceAccountName": "proxymux-client",
                "nodeSelector": {"node.info.ds_proxymux_client": "true"},
                "containers": [
                    {
                        "name": "proxymux-client",
                        "image": c.ref(IMAGES["proxymux"], "tag"),
                        "command": ["/bin/proxymux.sh", "--config", "/etc/proxymux/config.json"],
                        "env": [{"name": "CLUSTER_ID", "value": cluster_ocid}],
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {
                                "name": "kubernetes",
                                "mountPath": "/etc/kubernetes",
                                "readOnly": True,
                            },
                            {"name": "proxymux", "mountPath": "/etc/proxymux"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "kubernetes", "hostPath": {"path": "/etc/kubernetes", "type": ""}},
                    {
                        "name": "proxymux",
                        "hostPath": {"path": "/etc/proxymux", "type": "DirectoryOrCreate"},
                    },
                ],
            },
        ),
        created=created,
        labels={**proxymux_labels, **oke},
        generation=2,
    )

    csi_labels = {"app": "csi-oci-node", "role": "csi-oci"}
    daemonset(
        c,
        ns,
        "csi-oci-node",
        template(
            csi_labels,
            {
                **node_critical,
                "serviceAccountName": "csi-oci-node-sa",
                "containers": [
                    {
                        "name": "oci-csi-node-driver",
                        "image": c.ref(IMAGES["csi-node"], "tag"),
                        "command": ["/usr/local/bin/oci-csi-node-driver"],
                        "args": [
                            "--v=2",
                            "--endpoint=unix:///csi/csi.sock",
                            "--nodeid=$(KUBE_NODE_NAME)",
                            "--loglevel=debug",
                        ],
                        "env": [
                            {
                                "name": "KUBE_NODE_NAME",
                                "valueFrom": {
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}
                                },
                            },
                            {
                                "name": "PATH",
                                "value": "/usr/local/bin:/usr/bin:/bin:/host/usr/bin:/host/sbin",
                            },
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {"name": "plugin-dir", "mountPath": "/csi"},
                            {
                                "name": "pods-mount-dir",
                                "mountPath": "/var/lib/kubelet",
                                "mountPropagation": "Bidirectional",
                            },
                            {"name": "device-dir", "mountPath": "/dev"},
                            {
                                "name": "host-root",
                                "mountPath": "/host",
                                "mountPropagation": "HostToContainer",
                            },
                        ],
                    },
                    {
                        "name": "csi-node-registrar",
                        "image": c.ref(IMAGES["csi-registrar"], "tag"),
                        "args": [
                            "--csi-address=/csi/csi.sock",
                            "--kubelet-registration-path=/var/lib/kubelet/plugins/blockvolume.csi.oraclecloud.com/csi.sock",
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [
                            {"name": "plugin-dir", "mountPath": "/csi"},
                            {"name": "registration-dir", "mountPath": "/registration"},
                        ],
                    },
                ],
                "volumes": [
                    {
                        "name": "registration-dir",
                        "hostPath": {
                            "path": "/var/lib/kubelet/plugins_registry/",
                            "type": "DirectoryOrCreate",
                        },
                    },
                    {
                        "name": "plugin-dir",
                        "hostPath": {
                            "path": "/var/lib/kubelet/plugins/blockvolume.csi.oraclecloud.com",
                            "type": "DirectoryOrCreate",
                        },
                    },
                    {
                        "name": "pods-mount-dir",
                        "hostPath": {"path": "/var/lib/kubelet", "type": "Directory"},
                    },
                    {"name": "device-dir", "hostPath": {"path": "/dev", "type": ""}},
                    {"name": "host-root", "hostPath": {"path": "/", "type": "Directory"}},
                ],
            },
        ),
        created=created,
        labels={**csi_labels, **oke},
        generation=5,
    )


# --- nodes --------------------------------------------------------------------------------------


def node_template(compartment: str) -> Doc:
    return {
        "metadata": {
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/instance-type": "VM.Standard.E5.Flex",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "name": "pool-apps",
                "node-role.kubernetes.io/node": "",
                "node.info.ds_proxymux_client": "true",
                "node.info/kubeletVersion": "v1.31",
                "node.kubernetes.io/instance-type": "VM.Standard.E5.Flex",
                "topology.kubernetes.io/region": REGION,
                "failure-domain.beta.kubernetes.io/region": REGION,
            },
            "annotations": {
                "flannel.alpha.coreos.com/backend-type": "vxlan",
                "flannel.alpha.coreos.com/kube-subnet-manager": "true",
                "node.alpha.kubernetes.io/ttl": "0",
                "oci.oraclecloud.com/compartment-id": compartment,
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {},
        "status": {
            "capacity": {
                "cpu": "8",
                "ephemeral-storage": "48096452Ki",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": "65220172Ki",
                "pods": "110",
            },
            "allocatable": {
                "cpu": "7910m",
                "ephemeral-storage": "44326275418",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": "63451724Ki",
                "pods": "110",
            },
            "conditions": [
                {"type": t, "status": "False", "reason": r, "message": m}
                for t, r, m in (
                    (
                        "MemoryPressure",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                    ),
                    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    (
                        "PIDPressure",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                    ),
                )
            ]
            + [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "cri-o://1.31.1-1.el8",
                "kernelVersion": "5.15.0-304.171.4.3.el8uek.x86_64",
                "kubeProxyVersion": "v1.31.1",
                "kubeletVersion": "v1.31.1",
                "operatingSystem": "linux",
                "osImage": "Oracle Linux Server 8.10",
            },
        },
    }


def node_infos(c: Cluster, cluster_ocid: str) -> list[Doc]:
    infos = []
    short = cluster_ocid[-11:]
    pool = c.suffix(11).replace("b", "q")
    for index, node in enumerate(c.nodes):
        ad = f"EU-FRANKFURT-1-AD-{index + 1}"
        display = f"oke-c{short}-n{pool}-s{c.suffix(11)}-{index}"
        beat = ts(CAPTURED_AT - timedelta(seconds=c.rng.randint(5, 50)))
        infos.append(
            {
                "labels": {
                    "displayName": display,
                    "hostname": display,
                    "internal_addr": node.ip,
                    "kubernetes.io/hostname": node.ip,
                    "failure-domain.beta.kubernetes.io/zone": ad,
                    "topology.kubernetes.io/zone": ad,
                    "oci.oraclecloud.com/fault-domain": f"FAULT-DOMAIN-{(index % 3) + 1}",
                },
                "annotations": {
                    "alpha.kubernetes.io/provided-node-ip": node.ip,
                    "flannel.alpha.coreos.com/backend-data": json.dumps(
                        {"VNI": 1, "VtepMAC": ":".join(c.hex(2) for _ in range(6))},
                        separators=(",", ":"),
                    ),
                    "flannel.alpha.coreos.com/public-ip": node.ip,
                    "csi.volume.kubernetes.io/nodeid": json.dumps(
                        {
                            "blockvolume.csi.oraclecloud.com": node.ip,
                            "fss.csi.oraclecloud.com": node.ip,
                        },
                        separators=(",", ":"),
                    ),
                },
                "spec": {
                    "podCIDR": f"{node.pod_cidr_base}{node.first_host - 1}/25",
                    "podCIDRs": [f"{node.pod_cidr_base}{node.first_host - 1}/25"],
                    "providerID": ocid(c, "instance"),
                },
                "nodeInfo": {
                    "bootID": c.uid(),
                    "machineID": c.hex(32),
                    "systemUUID": c.uid(),
                },
                "heartbeat": beat,
            }
        )
    return infos


COREFILE = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""
FLANNEL_CNI = """{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
"""
KUBE_PROXY_CONF = """apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
clusterCIDR: 10.244.0.0/16
mode: iptables
metricsBindAddress: 0.0.0.0:10249
"""
