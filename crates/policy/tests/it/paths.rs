//! Relative paths in a model resolve against the model file's folder, made absolute when the
//! model is loaded, so that the current directory never decides where a file is (issue 8.7).

use std::path::{Path, PathBuf};

use zonegate_policy::*;

const TLS_MODEL: &str = r#"
zones:
  - zone_id: Z
    networks: [10.0.0.0/8]
conduits:
  - conduit_id: C
    gateway:
      listen: 127.0.0.1:0
      upstream: "tls://10.0.0.1:802?ca=pki/ca.pem&cert=pki/gw.pem&key=/etc/zonegate/gw.key"
audit:
  path: logs/audit.log
"#;

#[test]
fn a_relative_model_path_gives_an_absolute_folder() {
    // The test runs in the crate's folder; the model is named relative to it.
    let model = load_file(Path::new("tests/it/data/design-complete.yaml")).unwrap();
    let dir = model.dir.clone().unwrap();
    assert!(dir.is_absolute(), "{}", dir.display());
    assert_eq!(dir, std::env::current_dir().unwrap().join("tests/it/data"));
    assert_eq!(model.resolve(Path::new("a.log")), dir.join("a.log"));
    assert_eq!(
        model.resolve(Path::new("/var/a.log")),
        PathBuf::from("/var/a.log")
    );
}

#[test]
fn every_path_of_a_model_file_resolves_against_its_folder() {
    let model = load_file_text(TLS_MODEL, Path::new("/srv/site/model.yaml")).unwrap();
    assert_eq!(model.dir.as_deref(), Some(Path::new("/srv/site")));
    let audit = model.audit.as_ref().unwrap().path.as_deref().unwrap();
    assert_eq!(
        model.resolve(audit),
        PathBuf::from("/srv/site/logs/audit.log")
    );
    let upstream = &model.conduits[0].gateway.as_ref().unwrap().upstream;
    match model.resolve_upstream(upstream) {
        Upstream::Tls { ca, cert, key, .. } => {
            assert_eq!(ca, Some(PathBuf::from("/srv/site/pki/ca.pem")));
            assert_eq!(cert, Some(PathBuf::from("/srv/site/pki/gw.pem")));
            assert_eq!(key, Some(PathBuf::from("/etc/zonegate/gw.key")));
        }
        other => panic!("{other:?}"),
    }
    // A model given as text has no folder: paths stay as written.
    let text_only = load_str(TLS_MODEL, "<text>").unwrap();
    assert_eq!(text_only.dir, None);
    assert_eq!(text_only.resolve(audit), PathBuf::from("logs/audit.log"));
}
