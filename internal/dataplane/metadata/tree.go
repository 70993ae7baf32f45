package metadata

import (
	"slices"
	"strings"
)

// node is one entry of an EC2-style metadata tree: a directory (dir non-nil)
// or a leaf (its bytes). It mirrors the dicts Nova renders with
// ec2_md_print: a directory lists its entries sorted, one per line, with no
// trailing newline; a sub-directory is listed as "name/" unless it carries
// a label (public-keys/0 is listed as "0=keyname"); a leaf is its bytes.
type node struct {
	dir   map[string]*node
	label string
	leaf  []byte
}

func newDir() *node { return &node{dir: map[string]*node{}} }

func leafOf(s string) *node { return &node{leaf: []byte(s)} }

func leafBytes(b []byte) *node { return &node{leaf: b} }

// lines is a leaf of several values, one per line (Nova renders a list so).
func lines(vs []string) *node { return leafOf(strings.Join(vs, "\n")) }

func (n *node) add(name string, child *node) *node {
	n.dir[name] = child
	return n
}

// listing renders a directory.
func (n *node) listing() []byte {
	names := make([]string, 0, len(n.dir))
	for name := range n.dir {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('\n')
		}
		c := n.dir[name]
		switch {
		case c.dir == nil:
			b.WriteString(name)
		case c.label != "":
			b.WriteString(c.label)
		default:
			b.WriteString(name)
			b.WriteByte('/')
		}
	}
	return []byte(b.String())
}

// find walks tokens down the tree; a missing name, or a name under a leaf,
// is not found.
func (n *node) find(tokens []string) (*node, bool) {
	for _, t := range tokens {
		if n.dir == nil {
			return nil, false
		}
		c, ok := n.dir[t]
		if !ok {
			return nil, false
		}
		n = c
	}
	return n, true
}

// body is what a GET of the node answers.
func (n *node) body() []byte {
	if n.dir != nil {
		return n.listing()
	}
	return n.leaf
}
