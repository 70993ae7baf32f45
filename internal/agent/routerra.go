package agent

import (
	"errors"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/ra"
	"github.com/vland/vland/internal/dataplane/router"
	"github.com/vland/vland/internal/namedns"
)

// routerRALifetime is the router lifetime routers announce: radvd's
// default, three times the most time between advertisements.
const routerRALifetime = 300 * time.Second

// raWant is one interface that should send router advertisements.
type raWant struct {
	ns, dev string
	cfg     ra.Config
}

// routerAdvertisements lists, for each router placed here, the qr-
// interfaces on IPv6 subnets with an ipv6_ra_mode and what they announce
// (Neutron runs radvd in the router namespace for those): the subnets'
// flags and prefixes, the network MTU, and a router lifetime, since the
// router is the subnets' default gateway.
func routerAdvertisements(prefix string, routers map[string]agentapi.Router, networks map[string]agentapi.Network, subnets map[string]agentapi.Subnet, ports map[string]agentapi.Port) []raWant {
	var out []raWant
	for _, id := range slices.Sorted(maps.Keys(routers)) {
		r := routers[id]
		if !r.AdminStateUp {
			continue
		}
		for _, pid := range r.Interfaces {
			p, ok := ports[pid]
			if !ok || !p.Local {
				continue
			}
			var list []agentapi.Subnet
			for _, f := range p.FixedIPs {
				if sn, ok := subnets[f.SubnetID]; ok {
					list = append(list, sn)
				}
			}
			c := raConfig(list, routerRALifetime)
			if c == nil {
				continue
			}
			c.MTU = networks[p.NetworkID].MTU
			out = append(out, raWant{ns: router.NamespaceName(prefix, r.ID), dev: router.InternalDeviceName(p.ID), cfg: *c})
		}
	}
	return out
}

// advertisers runs the router interfaces' advertisers.
type advertisers struct {
	log *slog.Logger
	run map[string]*runningRA // by namespace + "/" + device
}

type runningRA struct {
	inode uint64
	adv   *ra.Advertiser
}

// sync starts, reconfigures and stops advertisers to match want; an
// interface whose namespace does not exist yet is retried next time.
func (a *advertisers) sync(want []raWant) error {
	if a.run == nil {
		a.run = map[string]*runningRA{}
	}
	wanted := map[string]raWant{}
	for _, w := range want {
		wanted[w.ns+"/"+w.dev] = w
	}
	for k, r := range a.run {
		w, ok := wanted[k]
		ino, err := nsInode(w.ns)
		if ok && err == nil && ino == r.inode {
			r.adv.SetConfig(w.cfg)
			continue
		}
		_ = r.adv.Stop()
		delete(a.run, k)
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(wanted)) {
		if a.run[k] != nil {
			continue
		}
		w := wanted[k]
		ino, err := nsInode(w.ns)
		if err != nil {
			continue
		}
		adv := ra.New(w.cfg, a.log.With("router_namespace", w.ns))
		if err := adv.Start(namedns.Path(w.ns), w.dev); err != nil {
			errs = append(errs, err)
			continue
		}
		a.run[k] = &runningRA{inode: ino, adv: adv}
	}
	return errors.Join(errs...)
}

func (a *advertisers) stop() error {
	var errs []error
	for k, r := range a.run {
		errs = append(errs, r.adv.Stop())
		delete(a.run, k)
	}
	return errors.Join(errs...)
}
