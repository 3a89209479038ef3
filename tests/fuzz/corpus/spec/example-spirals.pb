
spirals-healthy
examplespirals
Ü -ÍÌL=0"8

hidden1@:

hidden2@:

output:(2š™™™™™¹?ÍÌÌÌÌÌì?:@ B
ú