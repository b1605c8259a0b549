//! What a PXE server offers a network-booted host, asked of a real nginx serving the
//! layout `image/pxe-artifacts` makes: this host's own file first, then the default.

use ccnq_testkit::nginx::Nginx;
use ccnq_update::fetch::HttpSettings;
use ccnq_update::pxe::offered;
use url::Url;

#[tokio::test]
async fn the_hosts_own_file_wins_then_the_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("hosts")).unwrap();
    std::fs::write(
        dir.path().join("default.ipxe"),
        "#!ipxe\nset ccnq_version 1.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hosts/52-54-00-00-00-01.ipxe"),
        "#!ipxe\nset ccnq_version 2.0\n",
    )
    .unwrap();
    let nginx = Nginx::serve(dir.path(), None);
    let base = Url::parse(&nginx.url()).unwrap();
    let s = HttpSettings::default();

    let (v, from) = offered(&s, &base, Some("52:54:00:00:00:01")).await.unwrap();
    assert_eq!(v, "2.0");
    assert!(from.ends_with("hosts/52-54-00-00-00-01.ipxe"), "{from}");
    let (v, from) = offered(&s, &base, Some("52:54:00:00:00:02")).await.unwrap();
    assert_eq!((v.as_str(), from.ends_with("default.ipxe")), ("1.0", true));
    let (v, _) = offered(&s, &base, None).await.unwrap();
    assert_eq!(v, "1.0", "no MAC on the command line: the default");

    std::fs::write(dir.path().join("default.ipxe"), "#!ipxe\nshell\n").unwrap();
    let e = offered(&s, &base, None).await.unwrap_err().to_string();
    assert!(e.contains("no `set ccnq_version"), "{e}");
    std::fs::remove_file(dir.path().join("default.ipxe")).unwrap();
    let e = offered(&s, &base, Some("52:54:00:00:00:02"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("hosts/52-54-00-00-00-02.ipxe") && e.contains("default.ipxe"),
        "{e}"
    );
}
