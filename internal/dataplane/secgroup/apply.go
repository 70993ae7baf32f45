package secgroup

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elemsPerMessage bounds the elements of one NEWSETELEM/DELSETELEM message.
// A message nests all its elements in one attribute, whose length field
// has 16 bits: google/nftables v0.3.0 silently overflows it past 64 KiB
// (about 2,000 IPv6 ranges), so large changes are split into several
// messages, all in the same batch and so the same transaction.
const elemsPerMessage = 256

// queue adds ops to c's batch. handles gives the kernel handles of a rule
// of an unordered chain to delete.
func queue(c *nftables.Conn, ops []op, handles func(t *table, ch *chain, r *rule) ([]uint64, error)) error {
	// Each set gets a batch-local id of its own: with none, google/nftables
	// would take one from a package-level counter it increments without
	// synchronization (the kernel finds vland's sets by name anyway).
	ids := map[string]uint32{}
	setID := func(o op) uint32 {
		k := o.table.familyName() + "/" + o.set.name
		if ids[k] == 0 {
			ids[k] = uint32(len(ids) + 1)
		}
		return ids[k]
	}
	for _, o := range ops {
		nt := o.table.nft()
		switch o.kind {
		case opAddTable:
			c.AddTable(nt)
		case opDelTable:
			c.DelTable(nt)
		case opAddSet:
			if err := c.AddSet(o.set.nft(nt, setID(o)), nil); err != nil {
				return fmt.Errorf("set %s: %w", o.set.name, err)
			}
		case opDelSet:
			c.DelSet(o.set.nft(nt, setID(o)))
		case opAddElems, opDelElems:
			s := o.set.nft(nt, setID(o))
			for i := 0; i < len(o.elems); i += elemsPerMessage / 2 {
				es := o.set.nftElems(o.elems[i:min(i+elemsPerMessage/2, len(o.elems))], o.kind == opAddElems)
				var err error
				if o.kind == opAddElems {
					err = c.SetAddElements(s, es)
				} else {
					err = c.SetDeleteElements(s, es)
				}
				if err != nil {
					return fmt.Errorf("elements of set %s: %w", o.set.name, err)
				}
			}
		case opAddChain:
			ch := &nftables.Chain{Table: nt, Name: o.chain.name}
			if b := o.chain.base; b != nil {
				hook, prio := b.hook, b.priority
				accept := nftables.ChainPolicyAccept
				ch.Hooknum, ch.Priority, ch.Type, ch.Policy = &hook, &prio, nftables.ChainTypeFilter, &accept
			}
			c.AddChain(ch)
		case opDelChain:
			c.DelChain(&nftables.Chain{Table: nt, Name: o.chain.name})
		case opFlushChain:
			c.FlushChain(&nftables.Chain{Table: nt, Name: o.chain.name})
		case opAddRule:
			c.AddRule(&nftables.Rule{Table: nt, Chain: &nftables.Chain{Table: nt, Name: o.chain.name},
				Exprs: o.rule.exprs, UserData: userdata.AppendString(nil, userdata.TypeComment, o.rule.userComment())})
		case opDelRule:
			hs, err := handles(o.table, o.chain, o.rule)
			if err != nil {
				return err
			}
			for _, h := range hs {
				if err := c.DelRule(&nftables.Rule{Table: nt, Chain: &nftables.Chain{Table: nt, Name: o.chain.name}, Handle: h}); err != nil {
					return fmt.Errorf("delete rule %s: %w", o.rule.text, err)
				}
			}
		}
	}
	return nil
}

// sockBuffers returns a socket option that sets the send and receive
// buffers of a netlink socket. The FORCE variants (CAP_NET_ADMIN) may pass
// net.core.[rw]mem_max; without the capability the plain ones are tried.
func sockBuffers(snd, rcv int) nftables.SockOption {
	return func(c *netlink.Conn) error {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = raw.Control(func(fd uintptr) {
			set := func(force, plain, n int) error {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, n); err == nil {
					return nil
				}
				return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, plain, n)
			}
			serr = errors.Join(set(unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, snd), set(unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, rcv))
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("netlink socket buffers: %w", serr)
		}
		return nil
	}
}

// ruleKey extracts the key from the kernel comment of a rule ("k=<key> ...").
func ruleKey(ud []byte) string {
	c, ok := userdata.GetString(ud, userdata.TypeComment)
	if !ok || !strings.HasPrefix(c, "k=") {
		return ""
	}
	c = c[2:]
	if i := strings.IndexByte(c, ' '); i >= 0 {
		c = c[:i]
	}
	return c
}
