//! Requests as Docker 20.10 sent them to a recording plugin (see
//! docs: shared notes on the plugin protocol), parsed as the handlers see them.

use super::*;

#[test]
fn create_network_carries_the_option_and_the_pool_but_not_the_name() {
    let raw = br#"{"NetworkID":"9a8f0c","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{"ovsmesh.network":"red"}},"IPv4Data":[{"AddressSpace":"local","Gateway":"10.31.0.254/24","Pool":"10.31.0.0/24"}],"IPv6Data":[]}"#;
    let Call::CreateNetwork(create) = Call::parse("/NetworkDriver.CreateNetwork", raw).unwrap()
    else {
        panic!("not CreateNetwork");
    };
    assert_eq!(create.network_id, "9a8f0c");
    assert_eq!(create.topology_network().as_deref(), Some("red"));
    assert_eq!(create.pool(), Some("10.31.0.0/24"));
    let bare = br#"{"NetworkID":"x","Options":{"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"local","Gateway":"","Pool":""}]}"#;
    let Call::CreateNetwork(bare) = Call::parse("/NetworkDriver.CreateNetwork", bare).unwrap()
    else {
        panic!()
    };
    assert_eq!((bare.topology_network(), bare.pool()), (None, None));
}

#[test]
fn endpoint_calls_with_nulls_and_unknown_fields() {
    let raw = br#"{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"10.31.0.64/24","AddressIPv6":"","MacAddress":""},"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]},"SomethingNew":1}"#;
    let Call::CreateEndpoint(create) = Call::parse("/NetworkDriver.CreateEndpoint", raw).unwrap()
    else {
        panic!()
    };
    let iface = create.interface.unwrap();
    assert_eq!(
        (iface.address.as_str(), iface.mac_address.as_str()),
        ("10.31.0.64/24", "")
    );
    let join = br#"{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/docker/netns/abc","Options":null}"#;
    let Call::Join(join) = Call::parse("/NetworkDriver.Join", join).unwrap() else {
        panic!()
    };
    assert_eq!(join.sandbox_key, "/var/run/docker/netns/abc");
    assert!(matches!(
        Call::parse(
            "/NetworkDriver.Leave",
            br#"{"NetworkID":"n1","EndpointID":"e1"}"#
        ),
        Ok(Call::Leave(_))
    ));
    assert!(matches!(
        Call::parse(
            "/NetworkDriver.ProgramExternalConnectivity",
            br#"{"NetworkID":"n1","EndpointID":"e1","Options":null}"#
        ),
        Ok(Call::Nothing(_))
    ));
}

#[test]
fn ipam_calls_as_docker_sends_them() {
    let pool =
        br#"{"AddressSpace":"local","Pool":"10.31.0.0/24","SubPool":"","Options":{},"V6":false}"#;
    let Call::RequestPool(pool) = Call::parse("/IpamDriver.RequestPool", pool).unwrap() else {
        panic!()
    };
    assert_eq!(pool.pool, "10.31.0.0/24");
    assert!(!pool.v6);
    let gateway = br#"{"PoolID":"red/10.31.0.0/24","Address":"10.31.0.254","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#;
    let Call::RequestAddress(gateway) = Call::parse("/IpamDriver.RequestAddress", gateway).unwrap()
    else {
        panic!()
    };
    assert!(gateway.for_gateway());
    let container = br#"{"PoolID":"red/10.31.0.0/24","Address":"","Options":null}"#;
    let Call::RequestAddress(container) =
        Call::parse("/IpamDriver.RequestAddress", container).unwrap()
    else {
        panic!()
    };
    assert!(!container.for_gateway());
    assert_eq!(container.address, "");
}

#[test]
fn calls_without_arguments_and_unknown_calls() {
    assert_eq!(Call::parse("/Plugin.Activate", b""), Ok(Call::Activate));
    assert_eq!(
        Call::parse("/IpamDriver.GetDefaultAddressSpaces", b"null"),
        Ok(Call::DefaultAddressSpaces)
    );
    assert_eq!(
        Call::parse("/VolumeDriver.Mount", b"{}"),
        Err(ProtocolError::Unknown("/VolumeDriver.Mount".into()))
    );
    let bad = Call::parse("/NetworkDriver.Join", b"{\"NetworkID\": 5}").unwrap_err();
    assert!(bad.to_string().starts_with("NetworkDriver.Join: "), "{bad}");
}

#[test]
fn replies_have_dockers_field_names() {
    assert_eq!(activated()["Implements"][1], "IpamDriver");
    assert_eq!(network_capabilities()["Scope"], "local");
    assert_eq!(error("no")["Err"], "no");
    assert_eq!(
        error("no")["Error"],
        "no",
        "the IPAM protocol's name for it"
    );
    assert_eq!(endpoint_created(None), json!({}));
    assert_eq!(
        endpoint_created(Some("02:00:00:00:00:01".into()))["Interface"]["MacAddress"],
        "02:00:00:00:00:01"
    );
    let reply = joined(
        "vc0123",
        "eth",
        Some("10.31.0.254".parse().unwrap()),
        vec![StaticRoute {
            destination: "198.51.100.0/24".into(),
            route_type: 0,
            next_hop: "10.31.0.254".into(),
        }],
    );
    assert_eq!(
        reply,
        json!({
            "InterfaceName": {"SrcName": "vc0123", "DstPrefix": "eth"},
            "Gateway": "10.31.0.254",
            "StaticRoutes": [{"Destination": "198.51.100.0/24", "RouteType": 0, "NextHop": "10.31.0.254"}],
            "DisableGatewayService": true,
        })
    );
    assert!(joined("vc1", "eth", None, vec![]).get("Gateway").is_none());
}
