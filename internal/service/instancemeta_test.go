package service_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
	"github.com/vland/vland/internal/store"
)

func asAdmin(project string) context.Context {
	return policy.With(context.Background(), &policy.Credentials{UserID: "admin", ProjectID: project, Roles: []string{policy.RoleAdmin, policy.RoleMember}})
}

// portOn creates a port of the caller's project on network netID naming
// device as its device_id.
func portOn(t *testing.T, svc *service.Service, ctx context.Context, netID, device string) *model.Port {
	t.Helper()
	ps, err := svc.CreatePorts(ctx, []model.Fields{decode(t, model.PortSpec, map[string]any{"network_id": netID, "device_id": device})})
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// putMeta decodes a PUT body's inner object and applies it.
func putMeta(ctx context.Context, svc *service.Service, device string, inner map[string]any) (*model.InstanceMetadata, bool, error) {
	f, err := model.DecodeInstanceMetadata(device, map[string]any{"instance_metadata": inner})
	if err != nil {
		return nil, false, err
	}
	return svc.PutInstanceMetadata(ctx, device, f)
}

// wantErr checks err is an API error of status and type.
func wantErr(t *testing.T, err error, status int, typ string) {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Status != status || e.Type != typ {
		t.Fatalf("error %v, want %d %s", err, status, typ)
	}
}

// TestInstanceMetadataCacheReadHasTheDecodedBytes: what a PUT wrote is at
// once in the cache the agent side reads, with the user data decoded; a
// replace keeps created_at and bumps the revision; a delete removes it.
func TestInstanceMetadataCacheReadHasTheDecodedBytes(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	p1 := asProject("p1")
	n, _ := mustNetworkWithSubnet(t, svc, p1, "10.1.0.0/24")
	dev := "3f0c9a52-6d0e-4b8e-9a55-0d1c2b3a4f5e"
	portOn(t, svc, p1, n.ID, dev)

	if _, ok := svc.InstanceMetadata(dev); ok {
		t.Fatal("metadata before any PUT")
	}
	m, created, err := putMeta(p1, svc, dev, map[string]any{"name": "vm", "user_data": "AP8KAA==", "public_keys": map[string]any{"k": "ssh-ed25519 AAAA"}})
	if err != nil || !created || m.ProjectID != "p1" || m.RevisionNumber != 0 {
		t.Fatalf("create: %+v created=%v err=%v", m, created, err)
	}
	got, ok := svc.InstanceMetadata(dev)
	if !ok || !bytes.Equal(got.UserData, []byte{0, 0xff, '\n', 0}) || got.Name != "vm" || got.PublicKeys["k"] != "ssh-ed25519 AAAA" || got.DeviceID != dev {
		t.Fatalf("cached after create: %+v, %v", got, ok)
	}
	m2, created, err := putMeta(p1, svc, dev, map[string]any{"hostname": "vm-2"})
	if err != nil || created || m2.RevisionNumber != 1 || m2.CreatedAt != m.CreatedAt {
		t.Fatalf("replace: %+v created=%v err=%v", m2, created, err)
	}
	if got, _ := svc.InstanceMetadata(dev); got.UserData != nil || got.Name != "" || got.Hostname != "vm-2" || len(got.PublicKeys) != 0 {
		t.Fatalf("replace kept what it left out: %+v", got)
	}
	if err := svc.DeleteInstanceMetadata(p1, dev); err != nil {
		t.Fatal(err)
	}
	if _, ok := svc.InstanceMetadata(dev); ok {
		t.Fatal("metadata still cached after delete")
	}
	wantErr(t, svc.DeleteInstanceMetadata(p1, dev), 404, "InstanceMetadataNotFound")
}

// TestInstanceMetadataOwnership: a project writes the metadata of devices
// its ports name and nothing else; another project naming the same device
// on its own port cannot take the metadata over; readers read but do not
// write; admins write anything, the project coming from the body, the
// existing object, the device's ports or the admin in that order.
func TestInstanceMetadataOwnership(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	p1, p2 := asProject("p1"), asProject("p2")
	n1, _ := mustNetworkWithSubnet(t, svc, p1, "10.2.0.0/24")
	n2, _ := mustNetworkWithSubnet(t, svc, p2, "10.3.0.0/24")
	dev := "dev-own"
	portOn(t, svc, p1, n1.ID, dev)

	_, _, err := putMeta(p2, svc, dev, map[string]any{"name": "x"})
	wantErr(t, err, 404, "DeviceNotFound")
	_, _, err = putMeta(p1, svc, "dev-no-ports", map[string]any{"name": "x"})
	wantErr(t, err, 404, "DeviceNotFound")
	_, _, err = putMeta(p1, svc, dev, map[string]any{"project_id": "p2"})
	wantErr(t, err, 403, "PolicyNotAuthorized")
	_, _, err = putMeta(asProject("p1", policy.RoleReader), svc, dev, map[string]any{"name": "x"})
	wantErr(t, err, 403, "PolicyNotAuthorized")
	if _, _, err := putMeta(p1, svc, dev, map[string]any{"name": "mine", "project_id": "p1"}); err != nil {
		t.Fatal(err)
	}

	// p2 names the device on a port of its own: the metadata stays p1's
	// and p2 learns nothing about it.
	portOn(t, svc, p2, n2.ID, dev)
	_, _, err = putMeta(p2, svc, dev, map[string]any{"name": "stolen"})
	wantErr(t, err, 404, "DeviceNotFound")
	_, err = svc.GetInstanceMetadata(p2, dev)
	wantErr(t, err, 404, "InstanceMetadataNotFound")
	wantErr(t, svc.DeleteInstanceMetadata(p2, dev), 404, "InstanceMetadataNotFound")
	if m, err := svc.GetInstanceMetadata(asProject("p1", policy.RoleReader), dev); err != nil || m.Name != "mine" {
		t.Fatalf("reader of p1: %+v, %v", m, err)
	}
	wantErr(t, svc.DeleteInstanceMetadata(asProject("p1", policy.RoleReader), dev), 403, "PolicyNotAuthorized")

	admin := asAdmin("adm")
	// The existing object's project is kept by an admin's replace...
	if m, created, err := putMeta(admin, svc, dev, map[string]any{"name": "by-admin"}); err != nil || created || m.ProjectID != "p1" {
		t.Fatalf("admin replace: %+v created=%v %v", m, created, err)
	}
	// ...unless the body names one.
	if m, _, err := putMeta(admin, svc, dev, map[string]any{"tenant_id": "p2"}); err != nil || m.ProjectID != "p2" {
		t.Fatalf("admin moves the metadata: %+v %v", m, err)
	}
	// A new device: its ports' project; when they disagree, the admin
	// must name one.
	portOn(t, svc, p2, n2.ID, "dev-two")
	if m, created, err := putMeta(admin, svc, "dev-two", nil); err != nil || !created || m.ProjectID != "p2" {
		t.Fatalf("admin create for ported device: %+v created=%v %v", m, created, err)
	}
	portOn(t, svc, p1, n1.ID, "dev-three")
	portOn(t, svc, p2, n2.ID, "dev-three")
	_, _, err = putMeta(admin, svc, "dev-three", nil)
	wantErr(t, err, 400, "HTTPBadRequest")
	if m, _, err := putMeta(admin, svc, "dev-three", map[string]any{"project_id": "p1"}); err != nil || m.ProjectID != "p1" {
		t.Fatalf("admin create naming the project: %+v %v", m, err)
	}
	// No port at all: the admin's own project.
	if m, created, err := putMeta(admin, svc, "dev-unported", map[string]any{"user_data": "aGk="}); err != nil || !created || m.ProjectID != "adm" {
		t.Fatalf("admin create for unported device: %+v created=%v %v", m, created, err)
	}
	_, err = svc.GetInstanceMetadata(p1, "dev-unported")
	wantErr(t, err, 404, "InstanceMetadataNotFound")
	if err := svc.DeleteInstanceMetadata(admin, "dev-unported"); err != nil {
		t.Fatal(err)
	}
}

// TestInstanceMetadataIfMatch: revision-if-match holds for replace and
// delete; a constrained PUT of a missing object is refused.
func TestInstanceMetadataIfMatch(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	admin := asAdmin("adm")
	_, _, err := putMeta(service.WithIfMatch(admin, 0), svc, "dev-if", nil)
	wantErr(t, err, 412, "RevisionNumberConstraintFailed")
	if _, _, err := putMeta(admin, svc, "dev-if", nil); err != nil {
		t.Fatal(err)
	}
	if m, _, err := putMeta(service.WithIfMatch(admin, 0), svc, "dev-if", map[string]any{"name": "a"}); err != nil || m.RevisionNumber != 1 {
		t.Fatalf("matching replace: %+v %v", m, err)
	}
	_, _, err = putMeta(service.WithIfMatch(admin, 0), svc, "dev-if", nil)
	wantErr(t, err, 412, "RevisionNumberConstraintFailed")
	wantErr(t, svc.DeleteInstanceMetadata(service.WithIfMatch(admin, 0), "dev-if"), 412, "RevisionNumberConstraintFailed")
	if err := svc.DeleteInstanceMetadata(service.WithIfMatch(admin, 1), "dev-if"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentInstanceMetadataPutsCreateOnceAndLoseNothing: 24 PUTs of
// one device race; exactly one creates, every one commits (revisions 0 to
// 23, each once), and the stored object is the last writer's.
func TestConcurrentInstanceMetadataPutsCreateOnceAndLoseNothing(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	p1 := asProject("p1")
	n, _ := mustNetworkWithSubnet(t, svc, p1, "10.4.0.0/24")
	dev := "dev-race"
	portOn(t, svc, p1, n.ID, dev)
	const writers = 24
	var mu sync.Mutex
	created := 0
	revs := map[int64]string{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%d", i)
			m, c, err := putMeta(p1, svc, dev, map[string]any{"name": name})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if c {
				created++
			}
			if prev, dup := revs[m.RevisionNumber]; dup {
				errs <- fmt.Errorf("revision %d written by %s and %s", m.RevisionNumber, prev, name)
			}
			revs[m.RevisionNumber] = name
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if created != 1 || len(revs) != writers {
		t.Fatalf("%d creates, %d distinct revisions; want 1 and %d", created, len(revs), writers)
	}
	got, _ := svc.InstanceMetadata(dev)
	if got.RevisionNumber != writers-1 || got.Name != revs[writers-1] {
		t.Fatalf("final %s at revision %d, want %s at %d", got.Name, got.RevisionNumber, revs[writers-1], writers-1)
	}
}

// TestInstanceMetadataSeesPortsMadeThroughAnotherServer: two services on
// one etcd; a port made through the first counts at once for a PUT
// through the second, and the metadata shows up in the first's cache.
func TestInstanceMetadataSeesPortsMadeThroughAnotherServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st1, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st1.Close() })
	st2, err := store.Open(ctx, store.Config{Endpoints: st1.Client.Endpoints(), Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	one, two := service.New(st1, service.DefaultConfig(), nil), service.New(st2, service.DefaultConfig(), nil)
	for _, svc := range []*service.Service{one, two} {
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p1 := asProject("p1")
	n, _ := mustNetworkWithSubnet(t, one, p1, "10.5.0.0/24")
	for i := range 20 {
		dev := fmt.Sprintf("dev-x%d", i)
		portOn(t, one, p1, n.ID, dev)
		if _, _, err := putMeta(p1, two, dev, map[string]any{"name": dev}); err != nil {
			t.Fatalf("PUT through the second server right after the port: %v", err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := range 20 {
		dev := fmt.Sprintf("dev-x%d", i)
		for {
			// Take the change channel before looking, so no change is missed.
			_, changed := one.Cache().Changed()
			if m, ok := one.InstanceMetadata(dev); ok && m.Name == dev {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reached the first server's cache", dev)
			}
			select {
			case <-changed:
			case <-time.After(time.Until(deadline)):
			}
		}
	}
}
