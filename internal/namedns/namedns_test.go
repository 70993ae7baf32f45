package namedns

import (
	"fmt"
	"os"
	"testing"

	"github.com/vishvananda/netns"
)

// TestCreateDoDelete creates a named namespace, runs code inside it (which
// sees a different namespace than the caller's, whose own stays put), and
// deletes it again.
func TestCreateDoDelete(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := fmt.Sprintf("vnsd%d-a", os.Getpid())
	t.Cleanup(func() { _ = Delete(name) })
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	if err := Create(name); err == nil {
		t.Fatal("creating a taken name succeeded")
	}
	if !Exists(name) {
		t.Fatal("created namespace does not exist")
	}
	if got, _ := WithPrefix(fmt.Sprintf("vnsd%d-", os.Getpid())); len(got) != 1 || got[0] != name {
		t.Fatalf("WithPrefix = %v", got)
	}
	own, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	var inside netns.NsHandle
	err = Do(name, func() error {
		var err error
		inside, err = netns.Get()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	if inside.Equal(own) {
		t.Fatal("Do ran in the caller's namespace")
	}
	after, _ := netns.Get()
	defer after.Close()
	if !after.Equal(own) {
		t.Fatal("the caller's namespace changed")
	}
	h, err := Handle(name)
	if err != nil {
		t.Fatal(err)
	}
	links, err := h.LinkList()
	h.Close()
	if err != nil || len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Fatalf("links of a new namespace: %v %v", links, err)
	}
	if err := Delete(name); err != nil || Exists(name) {
		t.Fatalf("delete: %v, exists %v", err, Exists(name))
	}
	if err := Delete(name); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}
