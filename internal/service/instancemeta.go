package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// InstanceMetadataKind is the kind of instance metadata (instance-metadata),
// one object per device id: /v1/res/instance_metadata/<device-id>.
const InstanceMetadataKind = "instance_metadata"

// InstanceMetadataNotFound is the 404 for metadata the caller cannot see.
func InstanceMetadataNotFound(deviceID string) error {
	return apierr.New(404, "InstanceMetadataNotFound", "Instance metadata for device %s could not be found.", deviceID)
}

// DeviceNotFound is the 404 of a PUT for a device the caller owns no port
// of (or whose metadata belongs to another project).
func DeviceNotFound(deviceID string) error {
	return apierr.New(404, "DeviceNotFound", "Device %s could not be found.", deviceID)
}

// InstanceMetadata returns a device's metadata from the cache, without a
// policy check or a store round trip: for the agent-facing side, which has
// identified the device itself. The object is shared; callers must not
// change it. UserData holds the decoded bytes.
func (s *Service) InstanceMetadata(deviceID string) (*model.InstanceMetadata, bool) {
	return cachedAs[*model.InstanceMetadata](s, InstanceMetadataKind, deviceID)
}

// GetInstanceMetadata returns a device's metadata if the caller may see it:
// its project's members and readers, and admins.
func (s *Service) GetInstanceMetadata(ctx context.Context, deviceID string) (*model.InstanceMetadata, error) {
	m, ok := s.InstanceMetadata(deviceID)
	if !ok || !canSeeInstanceMetadata(creds(ctx), m) {
		return nil, InstanceMetadataNotFound(deviceID)
	}
	return m, nil
}

func canSeeInstanceMetadata(c *policy.Credentials, m *model.InstanceMetadata) bool {
	return c.IsAdmin() || c.Owns(m.ProjectID)
}

// devicePorts returns the cached ports whose device_id is deviceID. It
// scans every port: PUTs are rare next to the agent's reads, and a scan
// is cheap next to the store round trips of the PUT.
func (s *Service) devicePorts(deviceID string) []*model.Port {
	var out []*model.Port
	s.cache.Read(func(snap storeSnapshot) {
		snap.Each(Ports, func(_ string, it storeItem) bool {
			if p, ok := it.Value.(*model.Cached).Obj.(*model.Port); ok && p.DeviceID == deviceID {
				out = append(out, p)
			}
			return true
		})
	})
	return out
}

// PutInstanceMetadata creates or replaces a device's metadata with the
// decoded fields f (model.DecodeInstanceMetadata); created tells which.
//
// A project may write the metadata of a device one of its ports names
// (device_id), unless the metadata exists and belongs to another project;
// otherwise the device is not found (404), as for objects it cannot see.
// An admin may write any device's metadata: its project is the body's
// project_id, else the existing metadata's project, else the project of
// the device's ports (400 when they are in several: the admin must say),
// else the admin's own.
func (s *Service) PutInstanceMetadata(ctx context.Context, deviceID string, f model.Fields) (out *model.InstanceMetadata, created bool, err error) {
	if _, err := model.ParseDeviceID(deviceID); err != nil {
		return nil, false, apierr.InvalidAttr("device_id", err.Error())
	}
	c := creds(ctx)
	key := s.st.Keys.Resource(InstanceMetadataKind, deviceID)
	err = retry(ctx, "update instance metadata", func() error {
		resp, err := s.st.Client.Get(ctx, key)
		if err != nil {
			return storeErr(err)
		}
		var old *model.InstanceMetadata
		var rev int64
		if len(resp.Kvs) > 0 {
			old = new(model.InstanceMetadata)
			if err := json.Unmarshal(resp.Kvs[0].Value, old); err != nil {
				return fmt.Errorf("decode %s %s: %w", InstanceMetadataKind, deviceID, err)
			}
			rev = resp.Kvs[0].ModRevision
		}
		// Ports are read from the cache: let it reach the revision just
		// read, so a port made through another server counts.
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = s.cache.WaitRev(wctx, resp.Header.Revision)
		cancel()
		if err != nil {
			return storeErr(err)
		}
		project, err := s.metadataProject(c, deviceID, old, f)
		if err != nil {
			return err
		}
		m := model.NewInstanceMetadata(deviceID, project)
		current := int64(-1) // If-Match on a missing object never matches
		cmpKey := notExists(key)
		if old != nil {
			m.Standard = old.Standard
			m.ProjectID = project
			m.Touch()
			current, cmpKey = old.RevisionNumber, unchanged(key, rev)
		}
		if err := checkIfMatch(ctx, current); err != nil {
			return err
		}
		m.Replace(f)
		if err := m.CheckSize(); err != nil {
			return err
		}
		ok, err := s.commit(ctx, []clientv3.Cmp{cmpKey}, []clientv3.Op{s.putJSON(InstanceMetadataKind, deviceID, m)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out, created = m, old == nil
		return nil
	})
	return out, created, err
}

// metadataProject decides who may write a device's metadata and which
// project it then belongs to (see PutInstanceMetadata).
func (s *Service) metadataProject(c *policy.Credentials, deviceID string, old *model.InstanceMetadata, f model.Fields) (string, error) {
	given, _ := f["project_id"].(string)
	if !c.IsAdmin() {
		if old != nil && !c.Owns(old.ProjectID) {
			return "", DeviceNotFound(deviceID)
		}
		owns := slices.ContainsFunc(s.devicePorts(deviceID), func(p *model.Port) bool { return c.Owns(p.ProjectID) })
		if !owns {
			return "", DeviceNotFound(deviceID)
		}
		if !c.CanWrite() || given != "" && given != c.ProjectID {
			return "", apierr.PolicyNotAuthorized("update_instance_metadata")
		}
		return c.ProjectID, nil
	}
	switch {
	case given != "":
		return given, nil
	case old != nil:
		return old.ProjectID, nil
	}
	var projects []string
	for _, p := range s.devicePorts(deviceID) {
		if !slices.Contains(projects, p.ProjectID) {
			projects = append(projects, p.ProjectID)
		}
	}
	switch len(projects) {
	case 0:
	case 1:
		return projects[0], nil
	default:
		slices.Sort(projects)
		return "", apierr.BadRequest("Device %s has ports in several projects (%s): give the project_id of its metadata.", deviceID, strings.Join(projects, ", "))
	}
	if c.ProjectID == "" {
		return "", apierr.BadRequest("Failed to parse request. Required attribute 'project_id' not specified")
	}
	return c.ProjectID, nil
}

// DeleteInstanceMetadata deletes a device's metadata (its project's
// members, admins).
func (s *Service) DeleteInstanceMetadata(ctx context.Context, deviceID string) error {
	c := creds(ctx)
	if _, err := model.ParseDeviceID(deviceID); err != nil {
		return InstanceMetadataNotFound(deviceID)
	}
	key := s.st.Keys.Resource(InstanceMetadataKind, deviceID)
	return retry(ctx, "delete instance metadata", func() error {
		m, rev, err := load[model.InstanceMetadata](ctx, s, InstanceMetadataKind, deviceID)
		if err != nil {
			return err
		}
		if m == nil || !canSeeInstanceMetadata(c, m) {
			return InstanceMetadataNotFound(deviceID)
		}
		if !policy.CanChange(c, m.ProjectID) {
			return apierr.PolicyNotAuthorized("delete_instance_metadata")
		}
		if err := checkIfMatch(ctx, m.RevisionNumber); err != nil {
			return err
		}
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(key, rev)}, []clientv3.Op{clientv3.OpDelete(key)})
		if err != nil || ok {
			return err
		}
		return errConflict
	})
}
