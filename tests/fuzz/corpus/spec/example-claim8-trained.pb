
seed-claim8-trained
exampleseed

claim8
¬ -ÍÌL=0".

h0@:

h1@:

output:(2š™™™™™¹?ÍÌÌÌÌÌì?:< B8d