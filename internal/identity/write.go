package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// apiError is an error with the HTTP status and message Keystone would send.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func errNotFound(kind, id string) error {
	return &apiError{http.StatusNotFound, fmt.Sprintf("Could not find %s: %s.", kind, id)}
}

func errConflict(kind, name, domainID string) error {
	msg := fmt.Sprintf("Conflict occurred attempting to store %s - Duplicate entry found with name %s", kind, name)
	if domainID != "" {
		msg += " at domain ID " + domainID
	}
	return &apiError{http.StatusConflict, msg + "."}
}

func errBadRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func errForbidden(action string) error {
	return &apiError{http.StatusForbidden, "You are not authorized to perform the requested action: " + action + "."}
}

// errRaced reports that an optimistic update lost to a concurrent writer
// more often than it is worth retrying.
var errRaced = &apiError{http.StatusConflict, "Conflict occurred: the object changed concurrently, retry."}

// maxRetries bounds compare-and-swap retries of one update.
const maxRetries = 8

// putOp writes v as JSON; the records are plain structs, so encoding
// cannot fail.
func (b *Builtin) putOp(key string, v any) clientv3.Op {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("identity: encode %T: %v", v, err))
	}
	return clientv3.OpPut(key, string(data))
}

// ensureNamed creates an object under a name unless the name is taken, and
// returns the id now holding the name.
func (b *Builtin) ensureNamed(ctx context.Context, kind, scope, name, id string, ops ...clientv3.Op) (string, error) {
	nk := b.keys.name(kind, scope, name)
	resp, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(nk), "=", 0)).
		Then(append([]clientv3.Op{clientv3.OpPut(nk, id)}, ops...)...).
		Else(clientv3.OpGet(nk)).Commit()
	if err != nil {
		return "", fmt.Errorf("bootstrap %s %q: %w", kind, name, err)
	}
	if resp.Succeeded {
		return id, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return "", fmt.Errorf("bootstrap %s %q: name index vanished", kind, name)
	}
	return string(kvs[0].Value), nil
}

// commit runs a transaction and, when it succeeds, waits until this
// server's mirror reflects it so the caller's next read sees its write.
func (b *Builtin) commit(ctx context.Context, what string, cmps []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	resp, err := b.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	if err := b.mirror.waitRev(ctx, resp.Header.Revision); err != nil {
		return resp.Succeeded, fmt.Errorf("%s: %w", what, err)
	}
	return resp.Succeeded, nil
}

// createNamed creates an object in one transaction with its name-index key,
// so that concurrent creates of one name never both succeed. exists lists
// the keys that must exist (a referenced domain, project...).
func (b *Builtin) createNamed(ctx context.Context, kind, scope, name, id string, exists []string, ops ...clientv3.Op) error {
	nk := b.keys.name(kind, scope, name)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(nk), "=", 0)}
	for _, k := range exists {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
	}
	ok, err := b.commit(ctx, "create "+kind, cmps, append([]clientv3.Op{clientv3.OpPut(nk, id)}, ops...)...)
	if err != nil {
		return err
	}
	if !ok {
		// Tell a duplicate from a referenced object deleted meanwhile.
		resp, err := b.cli.Get(ctx, nk, clientv3.WithCountOnly())
		if err != nil {
			return fmt.Errorf("create %s: %w", kind, err)
		}
		if resp.Count > 0 {
			if kind == kindRole || kind == kindDomain {
				scope = ""
			}
			return errConflict(kind, name, scope)
		}
		return errRaced
	}
	return nil
}

// update replaces an object written at modRev, moving its name-index key
// when the name changes. It reports false when the object changed meanwhile
// (the caller re-reads and retries).
func (b *Builtin) update(ctx context.Context, kind, key string, modRev int64, oldName, newName nameKey, id string, v any, extra ...clientv3.Op) (bool, error) {
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", modRev)}
	ops := append([]clientv3.Op{b.putOp(key, v)}, extra...)
	if oldName != newName {
		nk := b.keys.name(newName.kind, newName.scope, newName.name)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(nk), "=", 0))
		ops = append(ops, clientv3.OpDelete(b.keys.name(oldName.kind, oldName.scope, oldName.name)), clientv3.OpPut(nk, id))
	}
	ok, err := b.commit(ctx, "update "+kind, cmps, ops...)
	if err != nil || ok {
		return ok, err
	}
	if oldName != newName {
		resp, err := b.cli.Get(ctx, b.keys.name(newName.kind, newName.scope, newName.name), clientv3.WithCountOnly())
		if err != nil {
			return false, fmt.Errorf("update %s: %w", kind, err)
		}
		if resp.Count > 0 {
			scope := newName.scope
			if scope == globalScope {
				scope = ""
			}
			return false, errConflict(kind, newName.name, scope)
		}
	}
	return false, nil
}

// grant gives user role on project; it reports whether the grant is new.
// Granting twice keeps the first grant (and its revision).
func (b *Builtin) grant(ctx context.Context, projectID, userID, roleID string) (bool, error) {
	k := b.keys.assignment(projectID, userID, roleID)
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(b.keys.project(projectID)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(b.keys.user(userID)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(b.keys.role(roleID)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(k), "=", 0),
	}
	ok, err := b.commit(ctx, "grant role", cmps, clientv3.OpPut(k, ""))
	if err != nil || ok {
		return ok, err
	}
	// Either the grant exists already, or something it names is gone.
	var exists bool
	var missing error
	b.mirror.read(func(st *mirrorState, _ int64) {
		_, exists = st.grants[projectID][userID][roleID]
		switch {
		case st.projects[projectID] == nil:
			missing = errNotFound(kindProject, projectID)
		case st.users[userID] == nil:
			missing = errNotFound(kindUser, userID)
		case st.roles[roleID] == nil:
			missing = errNotFound(kindRole, roleID)
		}
	})
	if missing != nil {
		return false, missing
	}
	if !exists {
		return false, errRaced
	}
	return false, nil
}

// asAPIError returns err's HTTP status and message, or 500 for store errors.
func asAPIError(err error) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code, ae.msg
	}
	if errors.Is(err, ErrUnauthenticated) {
		return http.StatusUnauthorized, "The request you have made requires authentication."
	}
	return http.StatusInternalServerError, "An unexpected error prevented the server from fulfilling your request."
}
