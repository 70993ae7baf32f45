package secgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// maxEchoes bounds the new rules whose handles a transaction asks the
// kernel to echo: a large change (a full rebuild, a new group of
// thousands of rules) does without, and a later deletion reads the handles
// it needs from the kernel.
const maxEchoes = 1000

// echoed is the handle of a rule the kernel created.
type echoed struct {
	family nftables.TableFamily
	chain  string
	key    string
	handle uint64
}

// transact applies ops to the tables of namespace nsFd in one
// transaction (one nfnetlink batch), and returns the handles of the new
// rules when there are at most maxEchoes.
//
// google/nftables builds the messages; vland sends the batch itself, for
// three reasons. Its Flush asks the kernel to acknowledge every message
// and to echo every new rule, then reads the answers one recvmsg at a
// time: for 10,000 rules that is 20,000 answers, which overflow a default
// socket buffer and cost more than the kernel's own work. It also sends
// the batch in one sendmsg, which fails when the batch outgrows the send
// buffer. Here the batch goes out on a socket whose send buffer fits it,
// with an acknowledgement requested for the last message only and echoes
// only when they are few; the kernel still reports every failing message,
// and it processes the whole batch before sendmsg returns, so every answer
// is queued when the reading starts.
func transact(nsFd int, ops []op, handles func(t *table, ch *chain, r *rule) ([]uint64, error)) ([]echoed, error) {
	var batch []netlink.Message
	ack := []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 4)}}
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req != nil {
			batch = append(batch, req...)
		}
		return ack, nil // what the capture answers Flush, message by message
	}))
	if err != nil {
		return nil, err
	}
	if err := queue(c, ops, handles); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("build batch: %w", err)
	}
	if len(batch) < 3 {
		return nil, nil // nothing between batch begin and end
	}
	newRule := netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE)
	rules := 0
	for _, m := range batch {
		if m.Header.Type == newRule {
			rules++
		}
	}
	echo := rules <= maxEchoes
	size := 0
	for i := range batch {
		h := &batch[i].Header
		h.Sequence, h.PID, h.Length = uint32(i+1), 0, 0
		h.Flags &^= netlink.Acknowledge | unix.NLM_F_ECHO
		if echo && h.Type == newRule {
			h.Flags |= unix.NLM_F_ECHO
		}
		size += 16 + (len(batch[i].Data)+3)&^3
	}
	last := &batch[len(batch)-2].Header // the last message before batch end
	last.Flags |= netlink.Acknowledge

	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	defer conn.Close()
	rcv := 1 << 20
	if echo {
		rcv += rules * 4096 // an echo is a few hundred bytes in a buffer of a few KiB
	}
	if err := sockBuffers(size+1<<16, rcv)(conn); err != nil {
		return nil, err
	}
	_ = conn.SetOption(netlink.ExtendedAcknowledge, true) // the kernel's reason, when it has one
	if _, err := conn.SendMessages(batch); err != nil {
		return nil, fmt.Errorf("send batch of %d messages (%d bytes): %w", len(batch), size, err)
	}
	return readBatchAnswers(conn, last.Sequence)
}

// readBatchAnswers collects the kernel's answers to a batch: echoes of new
// rules, errors of any message, and the acknowledgement of the last one
// (seq lastSeq), which comes after all others.
func readBatchAnswers(conn *netlink.Conn, lastSeq uint32) ([]echoed, error) {
	var errs []error
	var out []echoed
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The answers are queued already; the deadline only guards against
		// one that never comes.
		wait := 100 * time.Millisecond
		if len(errs) == 0 {
			wait = time.Until(deadline)
		}
		if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
			return nil, err
		}
		msgs, err := conn.Receive()
		if err != nil {
			var oe *netlink.OpError
			if !errors.As(err, &oe) {
				return nil, fmt.Errorf("read batch answers: %w", err)
			}
			if oe.Timeout() {
				if len(errs) > 0 {
					return nil, errors.Join(errs...)
				}
				return nil, errors.New("the kernel did not acknowledge the batch")
			}
			if _, sys := oe.Err.(*os.SyscallError); !sys {
				errs = append(errs, err) // a failing message: the batch is aborted
				continue
			}
			// ENOBUFS and the like: answers were lost, the outcome is unknown.
			return nil, fmt.Errorf("read batch answers: %w", err)
		}
		for _, m := range msgs {
			switch {
			case m.Header.Type == netlink.Error && m.Header.Sequence == lastSeq:
				if len(errs) > 0 {
					return nil, errors.Join(errs...)
				}
				return out, nil
			case m.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWRULE):
				if e, ok := parseEcho(m.Data); ok {
					out = append(out, e)
				}
			}
		}
	}
}

// parseEcho reads the family, chain, handle and key of an echoed rule of
// vland's tables.
func parseEcho(data []byte) (echoed, bool) {
	if len(data) < 4 {
		return echoed{}, false
	}
	e := echoed{family: nftables.TableFamily(data[0])}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return echoed{}, false
	}
	tableOK := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			tableOK = strings.TrimRight(ad.String(), "\x00") == TableName
		case unix.NFTA_RULE_CHAIN:
			e.chain = strings.TrimRight(ad.String(), "\x00")
		case unix.NFTA_RULE_HANDLE:
			e.handle = binary.BigEndian.Uint64(ad.Bytes())
		case unix.NFTA_RULE_USERDATA:
			e.key = ruleKey(ad.Bytes())
		}
	}
	return e, ad.Err() == nil && tableOK && e.key != "" && e.handle != 0
}
