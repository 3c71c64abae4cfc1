mod cbpdn;
