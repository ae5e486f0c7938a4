-- A change remembers the object's previous state when its labels or a selectable field
-- changed, so that a watch with a selector sees the object start matching (ADDED) or stop
-- matching (DELETED, with its last matching state) as the kube-apiserver's watch cache does.
-- Changes that leave labels and selectable fields alone keep NULL here.
ALTER TABLE changes ADD COLUMN previous TEXT;
