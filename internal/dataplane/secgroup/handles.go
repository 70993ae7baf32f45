package secgroup

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Deleting one rule of a security-group chain needs its kernel handle,
// which google/nftables v0.3.0 does not report when it adds a rule. The
// Manager keeps the handles of each such chain, read from the kernel when a
// deletion needs one it does not know: a dump of the chain's rules that
// decodes only their handles and comments (the key each rule's comment
// carries), several times cheaper than nftables.Conn.GetRules, which
// decodes every expression.

// handleCache maps, per table family and chain, rule keys to handles.
type handleCache map[string]map[string][]uint64

func cacheKey(t *table, chain string) string { return t.familyName() + "/" + chain }

// dumpHandles reads the handles of the rules of one chain by their keys.
func dumpHandles(nsFd int, t *table, chain string) (map[string][]uint64, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer conn.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		// struct nfgenmsg: family, version, resource id
		Data: append([]byte{byte(t.family), unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	msgs, err := conn.Execute(req)
	if err != nil {
		return nil, fmt.Errorf("list rules of %s %s: %w", t.familyName(), chain, err)
	}
	out := map[string][]uint64{}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		var handle uint64
		var key string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_HANDLE:
				handle = binary.BigEndian.Uint64(ad.Bytes())
			case unix.NFTA_RULE_USERDATA:
				key = ruleKey(ad.Bytes())
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("decode rule: %w", err)
		}
		if key != "" && handle != 0 {
			out[key] = append(out[key], handle)
		}
	}
	return out, nil
}
