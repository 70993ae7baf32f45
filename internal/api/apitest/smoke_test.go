package apitest

import "testing"

func TestSmoke(t *testing.T) {
	n := createNet(t, shared.a.net(t), rawNet{"name": "x"})
	t.Logf("%+v", n)
}
