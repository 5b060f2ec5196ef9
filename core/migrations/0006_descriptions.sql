-- Issue 15: a recording's description (the host's words about it: the replay page, the
-- podcast feed's episode notes). Empty until the host writes one.
ALTER TABLE recordings ADD COLUMN description TEXT NOT NULL DEFAULT '';
