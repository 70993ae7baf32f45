#!/usr/bin/env bash
# Drives the `openstack` CLI (and openstacksdk's pagination) through the
# rest of the core API: a network shared with one project through RBAC and
# consumed from it, tags set and cleared, 250 ports paged through, quotas
# shown and set, a subnet allocated from a subnet pool.
set -euo pipefail
BIN=${1:-bin/vland}
. "$(dirname "$0")/lib.sh"

admin_pass='core-admin-pw'
cli_setup core "$admin_pass" owner guest

for p in owner guest; do
	os admin project create "p-$p" -f value -c id >/dev/null
	os admin user create --project "p-$p" --password "$p-pw" "$p" -f value -c id >/dev/null
	os admin role add --project "p-$p" --user "$p" member
done
guest_project=$(os admin project show p-guest -f value -c id)

# RBAC: share the owner's network with the guest project only.
net=$(os owner network create shared-net -f value -c id)
os owner subnet create --network shared-net --subnet-range 10.60.0.0/24 shared-sub -f value -c id >/dev/null
check "guest cannot see it yet" "" "$(os guest network list -f value -c ID | grep -x "$net" || true)"
os owner network rbac create --type network --action access_as_shared --target-project "$guest_project" "$net" -f value -c id >/dev/null
check "guest sees it as shared" "True" "$(os guest network show "$net" -f value -c shared)"
os guest port create --network "$net" guest-port -f value -c id >/dev/null
check "guest's port on the shared network" "guest-port" "$(os guest port list --network "$net" -f value -c Name)"
rbac=$(os owner network rbac list -f value -c ID | head -n1)
if os owner network rbac delete "$rbac" 2>"$dir/err"; then
	check "policy in use refused" "409" "204"
else
	check "policy in use refused" "1" "$(grep -c 409 "$dir/err")"
fi

# Tags.
os owner network set --tag red --tag blue shared-net
check "tags set" "blue,red" "$(os owner network show shared-net -f json -c tags | python3 -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin)["tags"])))')"
check "filter by tag" "shared-net" "$(os owner network list --tags red -f value -c Name)"
os owner network unset --tag red shared-net
check "tag unset" "blue" "$(os owner network show shared-net -f json -c tags | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["tags"]))')"
os owner network set --no-tag shared-net
check "tags cleared" "" "$(os owner network show shared-net -f json -c tags | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["tags"]))')"

# 250 ports created through the API (one bulk request), then paged.
token=$(os owner token issue -f value -c id)
page_net=$(os owner network create page-net -f value -c id)
os owner subnet create --network page-net --subnet-range 10.61.0.0/23 page-sub -f value -c id >/dev/null
python3 - "$VLAND_URL" "$token" "$page_net" <<'PY'
import json, sys, urllib.request
url, token, net = sys.argv[1:]
body = json.dumps({"ports": [{"network_id": net, "name": "p%03d" % i} for i in range(250)]}).encode()
req = urllib.request.Request(url + "/v2.0/ports", data=body, method="POST",
                             headers={"X-Auth-Token": token, "Content-Type": "application/json"})
assert urllib.request.urlopen(req).status == 201
PY
check "CLI lists all 250" "250" "$(os owner port list --network page-net -f value -c ID | wc -l)"
check "SDK pages through 250 by 40" "250 7" "$(/usr/bin/python3 - <<'PY'
import openstack
conn = openstack.connect(cloud="owner")
net = conn.network.find_network("page-net")
seen, pages = set(), 0
for p in conn.network.ports(network_id=net.id, limit=40, paginated=True):
    seen.add(p.id)
print(len(seen), -(-len(seen) // 40))
PY
)"

# Quotas. (`openstack quota set/show` build a compute client first and
# fail on a cloud without Nova, as they would against Neutron alone; the
# network quota API is driven through openstacksdk, which the CLI uses.)
sdk() { /usr/bin/python3 -c "import openstack, sys; conn = openstack.connect(cloud=sys.argv[1]); $2" "$1"; }
owner_project=$(os admin project show p-owner -f value -c id)
check "default port quota" "500" "$(sdk owner "print(conn.network.get_quota('$owner_project').ports)")"
sdk admin "conn.network.update_quota('$owner_project', networks=2)"
check "quota set" "2" "$(sdk owner "print(conn.network.get_quota('$owner_project').networks)")"
check "other quotas stay default" "500" "$(sdk admin "print(conn.network.get_quota('$owner_project').ports)")"
check "usage shown" "2" "$(sdk admin "print(conn.network.get_quota('$owner_project', details=True).networks['used'])")"
if os owner network create over-quota 2>"$dir/err"; then
	check "over quota refused" "409" "201"
else
	check "over quota refused" "1" "$(grep -c -i quota "$dir/err")"
fi

# A subnet from a pool.
os admin subnet pool create --pool-prefix 10.70.0.0/16 --default-prefix-length 26 --share pool1 -f value -c id >/dev/null
pool_net=$(os guest network create pool-net -f value -c id)
check "subnet from the pool" "10.70.0.0/26" "$(os guest subnet create --network pool-net --subnet-pool pool1 pool-sub -f value -c cidr)"
check "prefix length honoured" "10.70.0.64/28" "$(os guest subnet create --network pool-net --subnet-pool pool1 --prefix-length 28 pool-sub2 -f value -c cidr)"

cli_report cli-core
