package metadata

import (
	"crypto/rand"
	"net/netip"
	"path"
	"strings"
)

// Answer is what the service returns for one path: a body and its
// Content-Type.
type Answer struct {
	Body        []byte
	ContentType string
}

// answer is Answer inside the package.
type answer = Answer

// CleanPath normalises a request path the way Nova's posixpath.normpath
// does: rooted, no empty, "." or ".." segments (".." cannot climb above the
// root), no trailing slash. net/http has already decoded percent-escapes,
// so "%2e%2e" arrives as ".." and is removed here too.
func CleanPath(p string) string { return path.Clean("/" + p) }

// Answer renders what the service answers at path (cleaned with CleanPath)
// to this instance, for a request from src; false means 404. It is pure
// apart from meta_data.json's random_seed, fresh random bytes each time as
// Nova draws them.
func (in *Instance) Answer(p string, src netip.Addr) (Answer, bool) {
	return in.answer(p, src, randomSeed)
}

// randomSeed fills b from the system's CSPRNG (which does not fail).
func randomSeed(b []byte) { _, _ = rand.Read(b) }

// answer is Answer with the random source given.
func (in *Instance) answer(p string, src netip.Addr, seed func([]byte)) (Answer, bool) {
	tokens := strings.Split(CleanPath(p), "/")[1:]
	switch tokens[0] {
	case "ec2", "openstack":
	case "":
		tokens = []string{"ec2"} // "/"
	default:
		// Nova serves the EC2 tree both at /<version>/… and /ec2/<version>/….
		tokens = append([]string{"ec2"}, tokens...)
	}
	switch {
	case len(tokens) == 1 && tokens[0] == "openstack":
		return Answer{Body: osVersionList(), ContentType: textPlain}, true
	case len(tokens) == 1:
		return Answer{Body: ec2VersionList(), ContentType: textPlain}, true
	case tokens[0] == "openstack":
		return in.osLookup(tokens[1:], seed)
	default:
		return in.ec2Lookup(tokens[1:], src)
	}
}
