"""Identity verification (KYC) of performers: documents, review, what it unlocks."""
