

a,b,label
"
(