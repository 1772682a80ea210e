//! A test storer that reaches past its template: for app `elsewhere` it
//! writes into bucket `other` (which the host must refuse); otherwise it
//! writes where it should but claims an object of bucket `other` it never
//! wrote (which the host must not believe).

wit_bindgen::generate!({ path: "../../wit", world: "storer" });

struct ForgingStore;

impl Guest for ForgingStore {
    fn store(id: StreamId, t: Template, img: Image, _at: CaptureTime) -> Result<StoredObject, String> {
        if id.app == "elsewhere" {
            return livesnap::snapshot::object_store::put("other", "stolen.jpg", "image/jpeg", &img.data);
        }
        let mine = livesnap::snapshot::object_store::put(&t.bucket, "forged/mine.jpg", "image/jpeg", &img.data)?;
        Ok(StoredObject { bucket: "other".into(), object: "snapshot/victim/live/cam/1764070000.jpg".into(), ..mine })
    }
}

export!(ForgingStore);
