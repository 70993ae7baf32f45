package service

import (
	"context"
	"slices"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/ipam"
	"github.com/vland/vland/internal/model"
)

// IPAvailabilities reports, per network, how many addresses its subnets'
// pools hold and how many are allocated (network-ip-availability; admins
// only, as Neutron's default policy).
func (s *Service) IPAvailabilities(ctx context.Context) ([]map[string]any, error) {
	if !creds(ctx).IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("get_network_ip_availability")
	}
	var out []map[string]any
	s.cache.Read(func(snap storeSnapshot) {
		used := map[string]int{}
		snap.Each(Ports, func(_ string, it storeItem) bool {
			for _, f := range it.Value.(*model.Cached).Obj.(*model.Port).FixedIPs {
				used[f.SubnetID]++
			}
			return true
		})
		snap.Each(Networks, func(_ string, it storeItem) bool {
			n := it.Value.(*model.Cached).Obj.(*model.Network)
			var total, usedN uint64
			subs := []any{}
			for _, sid := range n.Subnets {
				sit, ok := snap.Get(Subnets, sid)
				if !ok {
					continue
				}
				sn := sit.Value.(*model.Cached).Obj.(*model.Subnet)
				size := ipam.Size(sn.AllocationPools)
				total, usedN = total+size, usedN+uint64(used[sid])
				subs = append(subs, map[string]any{
					"subnet_id": sid, "subnet_name": sn.Name, "cidr": sn.CIDR.String(), "ip_version": sn.IPVersion,
					"total_ips": size, "used_ips": used[sid],
				})
			}
			out = append(out, map[string]any{
				"network_id": n.ID, "network_name": n.Name, "project_id": n.ProjectID, "tenant_id": n.ProjectID,
				"total_ips": total, "used_ips": usedN, "subnet_ip_availability": subs,
			})
			return true
		})
	})
	slices.SortFunc(out, func(a, b map[string]any) int {
		return compareStrings(a["network_id"].(string), b["network_id"].(string))
	})
	return out, nil
}
