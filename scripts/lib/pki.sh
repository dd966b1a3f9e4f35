# shellcheck shell=bash
# Test PKI made with the openssl command line (3.0): one CA and end-entity router
# certificates for SVR peering, all ECDSA P-256.

# Makes a CA in DIR: DIR/ca.pem and DIR/ca.key, subject CN=NAME, valid DAYS (default 365).
pki_make_ca() {
    local dir=$1 name=$2 days=${3:-365}
    openssl req -x509 -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$days" -sha256 \
        -subj "/CN=$name" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
    chmod 600 "$dir/ca.key"
}

# Makes a router certificate signed by the CA in CA_DIR: DIR/FILE.pem and DIR/FILE.key
# (the key beside the certificate, where svrd looks for it). CN is the router's
# peering-common-name and the SAN URI is urn:ssr:peering:CN.
pki_make_router_cert() {
    local dir=$1 ca_dir=$2 file=$3 cn=$4 days=${5:-365}
    local ext="$dir/$file.ext"
    openssl req -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/$file.key" -out "$dir/$file.csr" -subj "/CN=$cn" 2>/dev/null
    cat >"$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth,serverAuth
subjectAltName=URI:urn:ssr:peering:$cn
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
    openssl x509 -req -in "$dir/$file.csr" -CA "$ca_dir/ca.pem" -CAkey "$ca_dir/ca.key" \
        -CAcreateserial -out "$dir/$file.pem" -days "$days" -sha256 \
        -extfile "$ext" 2>/dev/null
    chmod 600 "$dir/$file.key"
    rm -f "$dir/$file.csr" "$ext"
}

# Checks that DIR/FILE.pem chains to the CA in CA_DIR and carries the peering SAN for CN.
pki_verify_router_cert() {
    local dir=$1 ca_dir=$2 file=$3 cn=$4 text
    openssl verify -CAfile "$ca_dir/ca.pem" -purpose sslclient "$dir/$file.pem" >/dev/null ||
        return 1
    text=$(openssl x509 -in "$dir/$file.pem" -noout -text) || return 1
    grep -q "URI:urn:ssr:peering:$cn" <<<"$text" || return 1
    grep -q "CA:FALSE" <<<"$text" || return 1
    openssl x509 -in "$dir/$file.pem" -noout -subject | grep -q "CN *= *$cn\$" || return 1
}
