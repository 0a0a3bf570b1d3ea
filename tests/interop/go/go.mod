module kiteinterop

go 1.22

// The Go reference kite at its newest commit (2018-07-10, master).
require github.com/koding/kite v0.0.0-20180710021347-baa1a54919e3

// The reference predates Go modules: its dependencies are pinned to the
// revisions of its Gopkg.lock (see README.md for the table).
require (
	github.com/cenkalti/backoff v1.1.0 // indirect
	github.com/dgrijalva/jwt-go v3.2.0+incompatible
	github.com/gorilla/context v1.1.1 // indirect
	github.com/gorilla/mux v1.6.2 // indirect
	github.com/gorilla/websocket v1.2.0
	github.com/igm/sockjs-go v0.0.0-20171030210102-c8a8c6429d10
	github.com/juju/ratelimit v1.0.1 // indirect
	github.com/koding/cache v0.0.0-20161222233015-e8a81b0b3f20 // indirect
	github.com/koding/logging v0.0.0-20160720134017-8b5a689ed69b // indirect
	github.com/satori/go.uuid v1.2.1-0.20180103174451-36e9d2ebbde5
	golang.org/x/crypto v0.0.0-20180617042118-027cca12c2d6 // indirect
	golang.org/x/net v0.0.0-20180611182652-db08ff08e862 // indirect
	golang.org/x/sys v0.0.0-20180616030259-6c888cc515d3 // indirect
	gopkg.in/mgo.v2 v2.0.0-20160818020120-3f83fa500528 // indirect
	gopkg.in/yaml.v2 v2.2.1 // indirect
)

// Test-only dependency of a dependency (juju/ratelimit's tests); not in the
// lock. The version gopkg.in/yaml.v2 v2.2.1's go.mod asks for.
require gopkg.in/check.v1 v0.0.0-20161208181325-20d25e280405 // indirect

// The reference Kontrol (github.com/koding/kite/kontrol, imported by the
// kontrol program) needs the rest of the lock: its PostgreSQL storage
// (lib/pq, lann/squirrel and its lann/builder, lann/ps; hashicorp/go-version),
// its etcd storage (coreos/etcd's v2 client, coreos/go-semver, ugorji/go) and
// koding/multiconfig (BurntSushi/toml, fatih/camelcase, fatih/structs). Same
// rule: the revisions of Gopkg.lock (README.md has the table).
require (
	github.com/BurntSushi/toml v0.3.0 // indirect
	github.com/coreos/etcd v3.3.8+incompatible // indirect
	github.com/coreos/go-semver v0.2.0 // indirect
	github.com/fatih/camelcase v1.0.0 // indirect
	github.com/fatih/structs v1.0.0 // indirect
	github.com/hashicorp/go-version v0.0.0-20180322230233-23480c066577 // indirect
	github.com/koding/multiconfig v0.0.0-20171124222453-69c27309b2d7 // indirect
	github.com/lann/builder v0.0.0-20180216234317-1b87b36280d0 // indirect
	github.com/lann/ps v0.0.0-20150810152359-62de8c46ede0 // indirect
	github.com/lann/squirrel v0.0.0-20170825200431-a6b93000bd21 // indirect
	github.com/lib/pq v0.0.0-20180523175426-90697d60dd84 // indirect
	github.com/ugorji/go v1.1.1 // indirect
)

// The reference's reverseproxy (imported by the proxypeer program) also needs
// koding/websocketproxy, at its Gopkg.lock revision.
require github.com/koding/websocketproxy v0.0.0-20180518005506-944ae4ae170f // indirect

// Keep the pins even if a future requirement asks for newer versions.
replace (
	github.com/cenkalti/backoff => github.com/cenkalti/backoff v1.1.0
	github.com/dgrijalva/jwt-go => github.com/dgrijalva/jwt-go v3.2.0+incompatible
	github.com/gorilla/context => github.com/gorilla/context v1.1.1
	github.com/gorilla/mux => github.com/gorilla/mux v1.6.2
	github.com/gorilla/websocket => github.com/gorilla/websocket v1.2.0
	github.com/igm/sockjs-go => github.com/igm/sockjs-go v0.0.0-20171030210102-c8a8c6429d10
	github.com/juju/ratelimit => github.com/juju/ratelimit v1.0.1
	github.com/koding/cache => github.com/koding/cache v0.0.0-20161222233015-e8a81b0b3f20
	github.com/koding/logging => github.com/koding/logging v0.0.0-20160720134017-8b5a689ed69b
	github.com/koding/websocketproxy => github.com/koding/websocketproxy v0.0.0-20180518005506-944ae4ae170f
	github.com/satori/go.uuid => github.com/satori/go.uuid v1.2.1-0.20180103174451-36e9d2ebbde5
	golang.org/x/crypto => golang.org/x/crypto v0.0.0-20180617042118-027cca12c2d6
	golang.org/x/net => golang.org/x/net v0.0.0-20180611182652-db08ff08e862
	golang.org/x/sys => golang.org/x/sys v0.0.0-20180616030259-6c888cc515d3
	gopkg.in/mgo.v2 => gopkg.in/mgo.v2 v2.0.0-20160818020120-3f83fa500528
	gopkg.in/yaml.v2 => gopkg.in/yaml.v2 v2.2.1
)

replace (
	github.com/BurntSushi/toml => github.com/BurntSushi/toml v0.3.0
	github.com/coreos/etcd => github.com/coreos/etcd v3.3.8+incompatible
	github.com/coreos/go-semver => github.com/coreos/go-semver v0.2.0
	github.com/fatih/camelcase => github.com/fatih/camelcase v1.0.0
	github.com/fatih/structs => github.com/fatih/structs v1.0.0
	github.com/hashicorp/go-version => github.com/hashicorp/go-version v0.0.0-20180322230233-23480c066577
	github.com/koding/multiconfig => github.com/koding/multiconfig v0.0.0-20171124222453-69c27309b2d7
	github.com/lann/builder => github.com/lann/builder v0.0.0-20180216234317-1b87b36280d0
	github.com/lann/ps => github.com/lann/ps v0.0.0-20150810152359-62de8c46ede0
	github.com/lann/squirrel => github.com/lann/squirrel v0.0.0-20170825200431-a6b93000bd21
	github.com/lib/pq => github.com/lib/pq v0.0.0-20180523175426-90697d60dd84
	github.com/ugorji/go => github.com/ugorji/go v1.1.1
)
