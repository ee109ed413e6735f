"""The hub's container network and the host's rules around it, on the real engine (I/O).

Contract:
- `ensure_network(client, network)` creates the hub's bridge network (see
  `translate.container_network`: inter-container traffic off, named after
  the hub) when it is missing, checks an existing one has those settings,
  and returns it with its subnet. Idempotent; safe when two processes race.
- `ensure_firewall(firewall)` makes the host's iptables rules exactly
  `translate.host_firewall`'s: its chain holds those rules and INPUT jumps to
  it through those hooks, nothing more (stale hooks of the chain are removed).
  A no-op when they are in place already, so every spawn and run may call it.
- `ensure_container_network(client, name_prefix, subnet, ports)` is both,
  what the hub's start, the spawner and the pipeline executor call.
- `prepare_network(settings)` runs at hub start (`startup.prepare`): it makes
  sure the network and rules exist and returns the settings with
  `docker.network_subnet` filled in, so the pure config can bind the hub API
  to the network's gateway.
Errors are `NetworkError`s that say what to do.
"""

from __future__ import annotations

import shutil
import subprocess

import docker
import docker.errors

from .translate import (
    ContainerNetwork,
    HostFirewall,
    container_network,
    gateway_address,
    host_firewall,
    host_ports,
    network_create_arguments,
)


class NetworkError(RuntimeError):
    """The network or the host's rules can't be set up; the message says how to fix it."""


def ensure_network(client: docker.APIClient, network: ContainerNetwork) -> ContainerNetwork:
    try:
        info = client.inspect_network(network.name)
    except docker.errors.NotFound:
        try:
            client.create_network(**network_create_arguments(network))
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: another process created it first
                raise NetworkError(
                    f"cannot create the docker network {network.name}: {e.explanation}"
                ) from None
        info = client.inspect_network(network.name)
    options = info.get("Options") or {}
    configs = (info.get("IPAM") or {}).get("Config") or [{}]
    subnet, gateway = configs[0].get("Subnet"), configs[0].get("Gateway")
    wanted = network_create_arguments(network)["options"]
    problems = [
        f"option {key}={options.get(key)!r}, wanted {value!r}"
        for key, value in wanted.items()
        if options.get(key) != value
    ]
    if not subnet or gateway != gateway_address(subnet):
        problems.append(f"gateway {gateway} is not the first address of its subnet {subnet}")
    if network.subnet and subnet != network.subnet:
        problems.append(f"subnet {subnet}, but docker.network_subnet is {network.subnet}")
    if problems:
        raise NetworkError(
            f"the docker network {network.name} exists with other settings ({'; '.join(problems)});"
            f" stop this hub's containers and remove it (`docker network rm {network.name}`): the hub"
            " creates it again"
        )
    return ContainerNetwork(network.name, network.bridge, network.chain, subnet)


def ensure_firewall(firewall: HostFirewall, iptables: str = "iptables") -> None:
    if not shutil.which(iptables):
        raise NetworkError(
            f"{iptables} is not installed; the docker backend needs it to keep containers off the"
            " host's services (Debian: apt-get install iptables)"
        )
    chain = firewall.chain
    listed = _iptables(iptables, "-S", chain, check=False)
    if listed.returncode != 0:
        _iptables(iptables, "-N", chain)
        listed = _iptables(iptables, "-S", chain)
    present = [line.split()[2:] for line in listed.stdout.splitlines() if line.startswith("-A ")]
    if present != firewall.rules:
        _iptables(iptables, "-F", chain)
        for rule in firewall.rules:
            _iptables(iptables, "-A", chain, *rule)
    listed = [line.split()[2:] for line in _iptables(iptables, "-S", "INPUT").stdout.splitlines()]
    hooks: list[list[str]] = []
    for rule in (rule for rule in listed if rule[-2:] == ["-j", chain]):
        if rule in firewall.hooks and rule not in hooks:
            hooks.append(rule)
        else:  # stale, or a second copy (two processes raced to add it)
            _iptables(iptables, "-D", "INPUT", *rule)
    for hook in (rule for rule in reversed(firewall.hooks) if rule not in hooks):
        # First in INPUT: a broad ACCEPT placed earlier by someone else must not open the host.
        _iptables(iptables, "-I", "INPUT", "1", *hook)


def ensure_container_network(
    client: docker.APIClient, name_prefix: str, subnet: str | None, ports: tuple[int, ...]
) -> ContainerNetwork:
    network = ensure_network(client, container_network(name_prefix, subnet))
    ensure_firewall(host_firewall(network, tuple(ports)))
    return network


def prepare_network(settings):
    """At hub start: the network and rules in place, `docker.network_subnet` filled in."""
    from ...settings import SettingsError

    try:
        client = docker.APIClient(version="auto")
        network = ensure_container_network(
            client, settings.instance_name, settings.docker.network_subnet, host_ports(settings)
        )
    except docker.errors.DockerException as e:
        raise SettingsError("docker", [f"backend docker: the Docker engine does not answer ({e})"]) from None
    except NetworkError as e:
        raise SettingsError("docker", [f"backend docker: {e}"]) from None
    docker_settings = settings.docker.model_copy(update={"network_subnet": network.subnet})
    return settings.model_copy(update={"docker": docker_settings})


def _iptables(iptables: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # -w: wait for the xtables lock (Docker and other hubs change rules too).
    result = subprocess.run([iptables, "-w", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        hint = (
            " (the docker backend needs the hub to run as root)"
            if "Permission denied" in result.stderr
            else ""
        )
        raise NetworkError(f"{iptables} {' '.join(args)} failed: {result.stderr.strip()}{hint}")
    return result
