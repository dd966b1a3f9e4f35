# shellcheck shell=bash
# Writes the demo's authority: routers r1 and r2 joined by two WAN neighborhoods, ESKM
# with the hybrid Diffie-Hellman + ML-KEM exchange, and one encrypted service each way.

# Writes the configuration to FILE. CERT_DIR contains ca.pem, r1.pem and r2.pem (with their
# .key files beside them). The addresses are those of scripts/lib/demo-topology.sh.
config_write_two_router() {
    local file=$1 cert_dir=$2
    cat >"$file" <<CFG
# svrd demo: host1 - r1 = wan-a / wan-b = r2 - host5. Both routers read this file.
config
    authority
        name                              svrdemo
        enhanced-security-key-management  true

        security-key-management
            key-exchange-algorithm
                diffie-hellman-ml-kem
                    dh-key-size      2048
                    ml-kem-key-size  768
                exit
            exit
        exit

        trusted-ca-certificate  demo-ca
            file  $cert_dir/ca.pem
        exit

        client-certificate  r1
            file  $cert_dir/r1.pem
        exit

        client-certificate  r2
            file  $cert_dir/r2.pem
        exit

        security  encrypt-aes256
            encrypt            true
            encryption-cipher  aes-cbc-256
            hmac               true
            hmac-cipher        sha384
        exit

        tenant  corp
            description  "hosts behind r1 and r2"
        exit

        service  to-host5
            description  "LAN behind r2"
            address      $DEMO_LAN5_V4_NET
            address      $DEMO_LAN5_V6_NET
            security     encrypt-aes256
            access-policy  corp
                permission  allow
            exit
        exit

        service  to-host1
            description  "LAN behind r1"
            address      $DEMO_LAN1_V4_NET
            address      $DEMO_LAN1_V6_NET
            security     encrypt-aes256
            access-policy  corp
                permission  allow
            exit
        exit

$(config_router r1 r2 "$DEMO_R1_LAN_V4" "$DEMO_R1_LAN_V6" "$DEMO_R1_WAN_A" "$DEMO_R2_WAN_A" \
        "$DEMO_R1_WAN_B" "$DEMO_R2_WAN_B" to-host5 to-host1)

$(config_router r2 r1 "$DEMO_R2_LAN_V4" "$DEMO_R2_LAN_V6" "$DEMO_R2_WAN_A" "$DEMO_R1_WAN_A" \
        "$DEMO_R2_WAN_B" "$DEMO_R1_WAN_B" to-host1 to-host5)
    exit
exit
CFG
}

# Prints one router block. Addresses are ADDRESS/PREFIX-LENGTH. REMOTE_SERVICE is
# reached through the peer, LOCAL_SERVICE on this router's LAN.
config_router() {
    local name=$1 peer=$2 lan_v4=$3 lan_v6=$4 wan_a=$5 peer_wan_a=$6 wan_b=$7 peer_wan_b=$8
    local remote_service=$9 local_service=${10}
    cat <<ROUTER
        router  $name
            peering-common-name  svrdemo-$name

            peer  $peer
                router-name          $peer
                peering-common-name  svrdemo-$peer
            exit

            service-route  $remote_service-via-$peer
                service-name  $remote_service
                peer          $peer
            exit

            service-route  $local_service-local
                service-name  $local_service
                next-hop  $name-node  lan-net
                exit
            exit

            node  $name-node
                role  combo

                dataplane
                    driver        af-xdp
                    polling-mode  adaptive
                exit

                device-interface  lan
                    interface-name  lan

                    network-interface  lan-net
                        tenant  corp
$(config_address "$lan_v4")
$(config_address "$lan_v6")
                    exit
                exit
$(config_wan wan-a "$wan_a" "$peer_wan_a" "$peer")
$(config_wan wan-b "$wan_b" "$peer_wan_b" "$peer")
            exit
        exit
ROUTER
}

# Prints a WAN device-interface NAME (its Linux interface and its neighborhood have the
# same name) with address ADDR/LEN and an adjacency to PEER at PEER_ADDR.
config_wan() {
    local name=$1 addr=$2 peer_addr=$3 peer=$4
    cat <<WAN

                device-interface  $name
                    interface-name  $name

                    network-interface  $name-net
$(config_address "$addr")

                        neighborhood  $name
                            topology  mesh
                        exit

                        adjacency  ${peer_addr%/*}  $peer
                        exit
                    exit
                exit
WAN
}

# Prints an address entry for ADDRESS/PREFIX-LENGTH.
config_address() {
    cat <<ADDR
                        address  ${1%/*}
                            prefix-length  ${1#*/}
                        exit
ADDR
}
